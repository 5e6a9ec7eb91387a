/* cdm-unet-step: placeholder until its issue lands. */
#include <stdio.h>
int main(void) { fprintf(stderr, "cdm-unet-step: not implemented yet\n"); return 1; }
