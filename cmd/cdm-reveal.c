/* cdm-reveal: placeholder until its issue lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "cdm-reveal: not implemented yet\n"); return 1; }
