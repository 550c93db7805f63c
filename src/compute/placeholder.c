/* placeholder until the layer has code */
typedef int sp_compute_placeholder_;
