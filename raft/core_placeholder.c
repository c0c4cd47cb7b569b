/* placeholder */ typedef int raft_placeholder;
