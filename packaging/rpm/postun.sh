# hybrid-node-agent %postun: reload units. Nothing is deleted: rpm keeps an
# edited %config(noreplace) file as .rpmsave, and the agent's managed files
# (certs.d, trust anchors) stay.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
