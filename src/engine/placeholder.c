/* placeholder until the layer has code */
typedef int sp_engine_placeholder_;
