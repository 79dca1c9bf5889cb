#!/usr/bin/env bash
# A test the suite expects must not silently drop out: when /usr/bin/python3
# can import torch, this build must have the torch backend (and its tests).
#   torch_expected.sh BUILT(true|false)
set -u
built=$1
if /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  if [ "$built" != true ]; then
    echo "torch is installed but this build has no ringlet_torch backend (configured before torch was?):" \
         "the torch tests are missing; run tools/build, or meson setup --reconfigure" >&2
    exit 1
  fi
  echo "torch installed, backend built"
else
  [ "$built" = true ] && { echo "the build has the torch backend but /usr/bin/python3 cannot import torch" >&2; exit 1; }
  echo "torch not installed: no backend expected"
fi
