/* Fuzz target: command-line values. The tools' own parsers are compiled in
 * (cmd/common.c, and cmd/cdm-party.c with its main renamed, so its static
 * parse_peers and parse are reachable without copying them). Input:
 *   byte 0 selects the parser (mod 5), the rest is the text:
 *     0 cdm_cli_int        1 cdm_cli_double      2 cdm_cli_int_list
 *     3 --peers (parse_peers)
 *     4 a whole cdm-party command line, arguments separated by NUL bytes
 * Properties: no crash, hang or sanitizer report; a refusal is CDM_EINPUT
 * with a message; an accepted value is in range (ints, doubles,
 * ports 1..65535, hosts NUL-terminated within their buffer). Command lines
 * that would print --help and exit are skipped. */
#define main cdm_party_main
#include "../../cmd/cdm-party.c"
#undef main
#include "../../cmd/common.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TEXT 4096

static void check_err(int rc, const struct cdm_err *err)
{
	if (rc >= 0)
		return;
	/* (a message may quote a newline from the input: cdm_cli_fail prints it as '?') */
	if (rc != CDM_EINPUT || !err->msg[0])
		abort();
}

/* argv from NUL-separated text; 0 if it would ask for --help */
static int split_args(char *text, size_t len, char **argv, int cap)
{
	int argc = 0;
	argv[argc++] = (char *)"cdm-party";
	for (size_t i = 0; i < len && argc < cap - 1;) {
		argv[argc++] = text + i;
		i += strlen(text + i) + 1;
	}
	argv[argc] = NULL;
	for (int i = 1; i < argc; i++)
		if (argv[i][0] == '-' && argv[i][1] != '-' && strchr(argv[i], 'h'))
			return 0; /* -h, -qh, ... */
		else if (!strncmp(argv[i], "--h", 3))
			return 0; /* --help and its abbreviations */
	return argc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MAX_TEXT)
		return 0;
	static char text[MAX_TEXT + 1];
	memcpy(text, data + 1, size - 1);
	text[size - 1] = 0;
	struct cdm_err err = {0};
	int rc;
	switch (data[0] % 5) {
	case 0: {
		long long v = 0;
		rc = cdm_cli_int("--steps", text, -5, 100000, &v, &err);
		if (rc == 0 && (v < -5 || v > 100000))
			abort();
		break;
	}
	case 1: {
		double v = 0;
		rc = cdm_cli_double("--eta", text, 0, 10, &v, &err);
		if (rc == 0 && !(v >= 0 && v <= 10))
			abort();
		break;
	}
	case 2: {
		int64_t v[8];
		int n = 0;
		rc = cdm_cli_int_list("--label", text, 0, 9, v, 8, &n, &err);
		for (int i = 0; rc == 0 && i < n; i++)
			if (v[i] < 0 || v[i] > 9)
				abort();
		if (rc == 0 && (n < 1 || n > 8))
			abort();
		break;
	}
	case 3: {
		struct opts o;
		memset(&o, 0, sizeof o);
		rc = parse_peers(&o, text, &err);
		for (int i = 0; rc == 0 && i < CDM_PARTIES; i++)
			if (o.net.port[i] < 1 || o.net.port[i] > 65535 || o.net.host[i] != o.hosts[i] ||
			    !memchr(o.hosts[i], 0, sizeof o.hosts[i]))
				abort();
		break;
	}
	default: {
		char *argv[64];
		int argc = split_args(text, size - 1, argv, 64);
		if (!argc)
			return 0;
		struct opts o;
		memset(&o, 0, sizeof o);
		optind = 0; /* full getopt reset between inputs */
		opterr = 0;
		rc = parse(argc, argv, &o, &err);
		/* (which files are required evolves with cdm-party: only -o is asserted) */
		if (rc == 0 && (o.id < 0 || o.id > 2 || !o.output))
			abort();
		break;
	}
	}
	check_err(rc, &err);
	return 0;
}
