# Shared by .ci/run (the tests) and .ci/demo (the example DAGs). Sourced, not run; the caller has
# already cd'ed to the repository root. Defines section() and warn() for the caller's output and
# setup_venv VENV LOCK (a Python 3.11 venv with the provider and its test extras and the sandbox
# distribution, constrained by LOCK),
# then sets up the main lane: uv, and .venv from requirements/ci.lock (Airflow 3.3.2) with the test
# and docs extras (Sphinx: .ci/run builds docs/).
# .ci/run also builds the floor lane's .venv-floor from requirements/floor.lock (Airflow 3.1.0).
# Regenerate a lock after changing dependencies in pyproject.toml (sandbox/pyproject.toml names only
# what the provider's [test] extra holds, so the locks come from pyproject.toml alone; tests/test_locks.py):
#   uv pip compile pyproject.toml --extra test --extra docs --python-version 3.11 --universal -o requirements/ci.lock
#   requirements/floor.lock: the command in its header (its exact pins and why: requirements/floor.in)
#   requirements/deployment.lock (.ci/deployment's .venv-deploy: ci.lock's versions plus the Celery provider):
#   uv pip compile pyproject.toml --extra test --extra deployment --extra docs --python-version 3.11 --universal -c requirements/ci.lock -o requirements/deployment.lock
#   (the docs extra is in both, so the deployment lock pins every package CI's does: tests/test_locks.py)

export PIP_DISABLE_PIP_VERSION_CHECK=1
export UV_LINK_MODE="${UV_LINK_MODE:-copy}"
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"
export DEBIAN_FRONTEND=noninteractive

T_START=$SECONDS
T_SECTION=$SECONDS
SECTION=""
FAILED=()

section() {
    if [[ -n "$SECTION" ]]; then
        echo "--- ${SECTION}: $((SECONDS - T_SECTION))s"
    fi
    SECTION="$1"
    T_SECTION=$SECONDS
    echo
    echo "=== $1  (t+$((SECONDS - T_START))s)"
}

warn() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! WARNING: $*" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
}

# The versions a venv runs, for the top of each lane's sections: "Airflow 3.3.2, Python 3.11.7".
lane_versions() {
    "$1/bin/python" -c 'import importlib.metadata as md, platform
print("Airflow %s, Python %s" % (md.version("apache-airflow"), platform.python_version()))'
}

# apt_install PACKAGE COMMAND (.ci/deployment, .ci/soak): apt-get install PACKAGE unless COMMAND is found (root or password-less sudo).
apt_install() {
    local package="$1" command="$2" sudo=()
    if command -v "${command}" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/${command}" >/dev/null; then
        echo "found: ${command}"
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
            echo "not root and no password-less sudo: cannot apt-get install ${package}"
            return 1
        fi
    fi
    echo "installing ${package} with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${package}" >/dev/null
}

# setup_venv VENV LOCK [EXTRAS]: create VENV (Python 3.11) unless a working one is there, then install
# both distributions of this repository, constrained by LOCK (an existing venv is brought in line with
# it): the provider with EXTRAS (default: test) and the sandbox distribution (sandbox/: the vendor
# stand-ins, the pytest kit and the demo), whose requirements the [test] extra already holds.
# Returns non-zero on failure; written with explicit returns because a caller's `if` or `||`
# switches `set -e` off inside a function.
setup_venv() {
    local venv="$1" lock="$2" extras="${3:-test}"
    section "virtualenv + install (${venv} from ${lock})"
    if [[ -x "${venv}/bin/python" ]] \
        && "${venv}/bin/python" -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" 2>/dev/null; then
        echo "reusing ${venv} ($("${venv}/bin/python" --version))"
    else
        "${UV[@]}" venv --clear --python python3 "${venv}" || return 1
    fi
    "${venv}/bin/python" --version || return 1
    "${UV[@]}" pip install --python "${venv}/bin/python" -c "${lock}" -e ".[${extras}]" -e ./sandbox || return 1
    "${venv}/bin/python" - "${lock}" "${extras}" <<'EOF' || return 1
import importlib.metadata as md
import re
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

lock_file, extras = sys.argv[1], sys.argv[2]
for dist in ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk", "airflow-provider-exports",
             "airflow-provider-exports-sandbox"):
    print(f"  {dist}=={md.version(dist)}")

# A dependency added to pyproject.toml (or sandbox/pyproject.toml) but not to the lock installs
# unpinned: say so.
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
sandbox = tomllib.load(open("sandbox/pyproject.toml", "rb"))["project"]
optional = project.get("optional-dependencies", {})
names, seen = set(), set()
todo = [*project["dependencies"], f"{project['name']}[{extras}]", *sandbox["dependencies"]]
while todo:
    req = Requirement(todo.pop())
    if canonicalize_name(req.name) == canonicalize_name(project["name"]):
        for extra in set(req.extras) - seen:  # the test extra pulls in [postgres,parquet]
            seen.add(extra)
            todo += optional.get(extra, [])
    else:
        names.add(canonicalize_name(req.name))
locked = {
    canonicalize_name(m[1]) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", open(lock_file).read(), re.M)
}
if names - locked:
    print(f"  WARNING: {lock_file} is stale, not pinned: {sorted(names - locked)}; regenerate it")
EOF
}

# ---------------------------------------------------------------------------------------------
section "uv"
if command -v uv >/dev/null 2>&1; then
    UV=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
    UV=(python3 -m uv)
else
    # Nothing is installed outside the project: uv goes into .venv-uv/ (pip --target, which needs
    # neither the venv module nor a system Python that allows installs, PEP 668).
    [[ -x .venv-uv/bin/uv ]] || python3 -m pip install -q --target .venv-uv uv
    UV=("${PWD}/.venv-uv/bin/uv")
fi
"${UV[@]}" --version

# ---------------------------------------------------------------------------------------------
# .ci/deployment and .ci/soak use .venv-deploy only: they set SETUP_MAIN_VENV=0, so that, run
# beside the main lane's tests (.ci/run), they never reinstall into the .venv those run from.
T_MAIN_SETUP=$SECONDS
if [[ "${SETUP_MAIN_VENV:-1}" != 0 ]]; then
    setup_venv .venv requirements/ci.lock test,docs || exit 1
fi
T_MAIN_SETUP=$((SECONDS - T_MAIN_SETUP))
