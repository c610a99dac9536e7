/* sandbox (ns backend): the sandbox contract (sandbox_contract.c) on Linux
 * namespaces, and what belongs to this backend alone: its command line and
 * the capture of output. */
#include "sandbox_contract.c"

int main(void)
{
	const struct CMUnitTest own[] = {
		cmocka_unit_test(test_capture_head_and_tail),
		cmocka_unit_test(test_cli),
	};

	ts_init();
	return contract_main(SBX_NS, NULL, own, sizeof(own) / sizeof(own[0]));
}
