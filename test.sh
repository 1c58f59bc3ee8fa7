#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test of the workspace.
#
#   ./test.sh               as root: installs the Debian packages below if any is missing
#                           (saying which), then runs `cargo test --workspace`
#   ./test.sh -p crowbar-core    extra arguments go to `cargo test`
#
# Not root, nothing is installed: the missing packages are listed with the line that installs
# them, and the tests that need them fail naming the tool and that line.
#
# This is the one list of what the tests install; .ci/run calls this script.
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages, and which tests use them.
APT_PACKAGES=(
    iproute2                                   # network namespaces and veth pairs (ip)
    isc-dhcp-client udhcpc                     # DHCP clients against crowbar-dhcpd
    tftp-hpa atftp curl                        # TFTP clients against our TFTP server
    tcpdump                                    # checks DHCP replies on the wire
    qemu-system-x86 ipxe-qemu ovmf ipxe        # real PXE firmware: iPXE ROM and OVMF (UEFI)
    bind9-dnsutils knot-dnsutils nsd           # dig, kdig, and NSD for the differential DNS test
    openssh-server openssh-client              # the script jig against a real sshd on loopback
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "test.sh: every Debian package the tests use is installed"
elif [ "$(id -u)" = 0 ]; then
    echo "test.sh: installing the Debian packages the tests use: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "test.sh: not root, so not installing the Debian packages the tests use: ${missing[*]}" >&2
    echo "test.sh: the tests that need them will fail; install them with:" >&2
    echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "or run this script as root." >&2
fi

echo "test.sh: cargo test --workspace $*"
exec cargo test --workspace "$@"
