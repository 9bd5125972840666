# hybrid-node-agent %post (inlined systemd logic: cargo-generate-rpm expands
# no macros). $1 == 1: first install; $1 >= 2: upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
    systemctl enable hybrid-node-agent.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl start hybrid-node-agent.service >/dev/null 2>&1 || :
    fi
else
    if [ -d /run/systemd/system ]; then
        systemctl try-restart hybrid-node-agent.service >/dev/null 2>&1 || :
    fi
fi
exit 0
