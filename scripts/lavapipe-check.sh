#!/usr/bin/env bash
# Make sure a CPU Vulkan device (Mesa lavapipe, "llvmpipe") is available for burn's `wgpu` backend, and show it.
#
#   scripts/lavapipe-check.sh            install the packages if missing (apt, as root), then check
#   scripts/lavapipe-check.sh --no-install
#
# Exit 0 and print the Vulkan device line when `vulkaninfo --summary` lists a CPU device; exit 1 with the
# reason otherwise. No environment variable is needed afterwards: with lavapipe as the only Vulkan device,
# `Device::wgpu(Default::default())` comes up on it (cubecl-wgpu's Auto picks Vulkan and accepts software
# adapters).
set -euo pipefail

PACKAGES=(mesa-vulkan-drivers libvulkan1 vulkan-tools)
ICD=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json

die() {
  echo "lavapipe-check: error: $*" >&2
  exit 1
}

if [[ ${1:-} != --no-install ]] && { [[ ! -e $ICD ]] || ! command -v vulkaninfo >/dev/null 2>&1; }; then
  command -v apt-get >/dev/null 2>&1 || die "lavapipe is missing and apt-get is not available"
  [[ $(id -u) -eq 0 ]] || die "installing ${PACKAGES[*]} needs root"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; } ||
    die "apt-get install ${PACKAGES[*]} failed"
fi

ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1 ||
  die "no lavapipe ICD in /usr/share/vulkan/icd.d (package mesa-vulkan-drivers)"
command -v vulkaninfo >/dev/null 2>&1 || die "vulkaninfo not found (package vulkan-tools)"

summary=$(vulkaninfo --summary 2>&1) || {
  echo "$summary" | tail -n 20 >&2
  die "vulkaninfo --summary failed"
}
if ! grep -q 'PHYSICAL_DEVICE_TYPE_CPU' <<<"$summary"; then
  echo "$summary" | sed -n '/^Devices:/,$p' >&2
  die "no CPU Vulkan device (llvmpipe) listed by vulkaninfo --summary"
fi
echo "lavapipe-check: Vulkan CPU device: $(grep -m1 'deviceName' <<<"$summary" | sed 's/^.*= //')" \
  "($(grep -m1 'driverInfo' <<<"$summary" | sed 's/^.*= //'))"
