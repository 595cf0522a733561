/* The model file in flash, 16-byte aligned as the .tsm format's tensors require; MODEL_PATH is
 * given by build.sh. */
  .section .rodata.model, "a"
  .balign 16
  .global model_tsm
model_tsm:
  .incbin MODEL_PATH
  .global model_tsm_end
model_tsm_end:
