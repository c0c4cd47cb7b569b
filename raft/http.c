/* placeholder */ typedef int kv_placeholder;
