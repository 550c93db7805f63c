/* placeholder until the layer has code */
typedef int sp_chat_placeholder_;
