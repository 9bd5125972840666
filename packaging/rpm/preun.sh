# hybrid-node-agent %preun: $1 == 0 means removal (not upgrade): stop and disable.
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop hybrid-node-agent.service >/dev/null 2>&1 || :
    fi
    systemctl disable hybrid-node-agent.service >/dev/null 2>&1 || :
fi
exit 0
