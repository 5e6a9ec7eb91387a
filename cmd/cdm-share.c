/* cdm-share: placeholder until its issue lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "cdm-share: not implemented yet\n"); return 1; }
