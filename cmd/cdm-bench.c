/* cdm-bench: placeholder until its issue lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "cdm-bench: not implemented yet\n"); return 1; }
