/* placeholder until the layer has code */
typedef int sp_model_placeholder_;
