# Sourced by bench/<part>.sh: where the reference benchmarks live, and
# whether one can run.
#
# ORCH_ANCHORS names their folder; by default ../shared/anchors beside the
# checkout (a clone elsewhere has none: set ORCH_ANCHORS, or our figures are
# printed alone).
ANCHORS=${ORCH_ANCHORS:-../shared/anchors}

# ref_ready NAME: true when $ANCHORS/NAME/run.sh can run here; otherwise
# prints why the reference is skipped. SKIP_REF=1 skips every reference.
ref_ready() {
	if [ "${SKIP_REF:-0}" = 1 ]; then
		echo "reference skipped (SKIP_REF=1)"
		return 1
	fi
	if [ ! -x "$ANCHORS/$1/run.sh" ]; then
		echo "reference skipped: $ANCHORS/$1 is not here (set ORCH_ANCHORS to the folder of the reference benchmarks)"
		return 1
	fi
	if ! command -v node >/dev/null 2>&1; then
		echo "reference skipped: node is not installed"
		return 1
	fi
	return 0
}
