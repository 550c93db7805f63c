/* placeholder until the layer has code */
typedef int sp_tokenizer_placeholder_;
