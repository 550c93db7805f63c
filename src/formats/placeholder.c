/* placeholder until the layer has code */
typedef int sp_formats_placeholder_;
