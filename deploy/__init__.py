"""Fleet deployment of edge-daemon: the `edge-deploy` CLI driving the Ansible playbook in `deploy/ansible/`.

The device side lives beside it: `deploy/install.sh` (one device), `deploy/cloud-init/` (first boot of a flashed
image) and the project's `systemd/` unit and udev rules.
"""
