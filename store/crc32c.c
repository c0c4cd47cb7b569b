/* placeholder */ typedef int kv_placeholder_crc32c;
