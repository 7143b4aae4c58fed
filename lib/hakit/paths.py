"""Where the cluster's own files live on a node (one definition each)."""

AUTHKEY = "/etc/corosync/authkey"  # the shared corosync key (stage 2); never leaves a node but over SFTP
COROSYNC_CONF = "/etc/corosync/corosync.conf"  # stage 3
CIB_DIR = "/var/lib/pacemaker/cib"  # pacemaker's own copy of the CIB; empty until pacemaker first starts
CIB_XML = f"{CIB_DIR}/cib.xml"  # stage 3 seeds it on a cold start, never where it exists
