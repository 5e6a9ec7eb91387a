/* cdm-party: placeholder until its issue lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "cdm-party: not implemented yet\n"); return 1; }
