/* placeholder */ typedef int kv_placeholder_db;
