"""Where the cluster's own files live on a node (one definition each)."""

AUTHKEY = "/etc/corosync/authkey"  # the shared corosync key (stage 2); never leaves a node but over SFTP
COROSYNC_CONF = "/etc/corosync/corosync.conf"  # stage 3
