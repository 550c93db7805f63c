/* placeholder until the layer has code */
typedef int sp_server_placeholder_;
