#!/usr/bin/env bash
# Install with apt-get what building and testing Handover need, on Debian 12.
# Installs only the packages that are missing (apt-get update first, only
# then) and prints nothing when everything is already there. Run as root,
# or as a user with sudo.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libzmq3-dev liblmdb-dev lmdb-utils libprotobuf-c-dev protobuf-c-compiler
  libuv1-dev libcriterion-dev libyaml-dev libsodium-dev libjansson-dev
  libcurl4-openssl-dev libhttp-parser-dev libssl-dev
  clang clang-format git # clang: the libFuzzer build; clang-format: tools/check-style
  python3-hl7 # the independent HL7 client of the nursing tests (system python3)
  curl        # the independent FHIR client of the GP tests and the demo
  docker-compose # checks docker-compose.yml (there is no engine to run it)
)

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  echo "install-deps: dpkg-query and apt-get not found: this script is for" \
       "Debian 12; install the equivalents of: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

as_root=()
if ((EUID != 0)); then
  if ! command -v sudo >/dev/null; then
    echo "install-deps: missing packages: ${missing[*]}; run this script as" \
         "root (sudo is not installed)" >&2
    exit 1
  fi
  as_root=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q "${missing[@]}"
