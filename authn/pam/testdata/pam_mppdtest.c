/*
 * pam_mppdtest: a PAM module for mppd's tests, built by the tests with the
 * system's C compiler and loaded by absolute path from a stack in a
 * temporary directory (pam_start_confdir), so the real libpam runs the real
 * conversation without root and without touching /etc/pam.d.
 *
 * Arguments, acted on in this order, by both the auth and account hooks:
 *   live=FILE     append "+" to FILE, and "-" when libpam frees the
 *                 module's data, which it does in pam_end: equal counts
 *                 mean every transaction was ended
 *   tid=FILE      append "<user> <hook> <thread id>" to FILE
 *   rhost=FILE    append PAM_RHOST (or "(null)") and a newline to FILE
 *   info=TEXT     send TEXT as PAM_TEXT_INFO
 *   error=TEXT    send TEXT as PAM_ERROR_MSG
 *   echoon        ask a visible prompt; PAM_AUTH_ERR unless the answer is
 *                 the user name
 *   prompts=N     ask N hidden prompts (in one call each); the first answer
 *                 is the password
 *   expect=PW     PAM_AUTH_ERR unless the password is PW (asks one hidden
 *                 prompt when prompts= did not)
 *   setuser=NAME  set PAM_USER to NAME
 *   sleep=MS      sleep MS milliseconds
 *   ret=N         return N (default PAM_SUCCESS)
 * A conversation failure returns the conversation's own code.
 */
#define _GNU_SOURCE
#include <security/pam_modules.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static int ask(pam_handle_t *pamh, int style, const char *text, char **answer)
{
	const struct pam_conv *conv = NULL;
	struct pam_message m = { style, text };
	const struct pam_message *mp = &m;
	struct pam_response *r = NULL;
	int rc = pam_get_item(pamh, PAM_CONV, (const void **)&conv);
	if (rc != PAM_SUCCESS || conv == NULL || conv->conv == NULL)
		return PAM_CONV_ERR;
	rc = conv->conv(1, &mp, &r, conv->appdata_ptr);
	if (rc != PAM_SUCCESS)
		return rc;
	if (answer != NULL)
		*answer = (r != NULL && r->resp != NULL) ? strdup(r->resp) : NULL;
	if (r != NULL) {
		free(r->resp);
		free(r);
	}
	return PAM_SUCCESS;
}

static void append(const char *file, const char *line)
{
	FILE *f = fopen(file, "a");
	if (f == NULL)
		return;
	fprintf(f, "%s\n", line);
	fclose(f);
}

static void live_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh; (void)error_status;
	append((const char *)data, "-");
	free(data);
}

static int run(pam_handle_t *pamh, const char *hook, int argc, const char **argv)
{
	const char *user = NULL;
	char *password = NULL;
	int prompts = -1, ret = PAM_SUCCESS, rc, i;
	const char *expect = NULL;

	pam_get_item(pamh, PAM_USER, (const void **)&user);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "prompts=", 8) == 0)
			prompts = atoi(a + 8);
		else if (strncmp(a, "expect=", 7) == 0)
			expect = a + 7;
		else if (strncmp(a, "ret=", 4) == 0)
			ret = atoi(a + 4);
	}
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		char line[512];
		const void *data = NULL;
		if (strncmp(a, "live=", 5) == 0) {
			if (pam_get_data(pamh, "mppdtest-live", &data) != PAM_SUCCESS) {
				char *file = strdup(a + 5);
				if (file != NULL && pam_set_data(pamh, "mppdtest-live", file, live_cleanup) == PAM_SUCCESS)
					append(file, "+");
				else
					free(file);
			}
		} else if (strncmp(a, "tid=", 4) == 0) {
			snprintf(line, sizeof line, "%s %s %ld", user ? user : "(null)", hook, (long)syscall(SYS_gettid));
			append(a + 4, line);
		} else if (strncmp(a, "rhost=", 6) == 0) {
			const char *rhost = NULL;
			pam_get_item(pamh, PAM_RHOST, (const void **)&rhost);
			append(a + 6, rhost ? rhost : "(null)");
		} else if (strncmp(a, "info=", 5) == 0) {
			if ((rc = ask(pamh, PAM_TEXT_INFO, a + 5, NULL)) != PAM_SUCCESS)
				return rc;
		} else if (strncmp(a, "error=", 6) == 0) {
			if ((rc = ask(pamh, PAM_ERROR_MSG, a + 6, NULL)) != PAM_SUCCESS)
				return rc;
		} else if (strcmp(a, "echoon") == 0) {
			char *ans = NULL;
			if ((rc = ask(pamh, PAM_PROMPT_ECHO_ON, "login: ", &ans)) != PAM_SUCCESS)
				return rc;
			rc = (ans != NULL && user != NULL && strcmp(ans, user) == 0) ? PAM_SUCCESS : PAM_AUTH_ERR;
			free(ans);
			if (rc != PAM_SUCCESS)
				return rc;
		}
	}
	if (prompts < 0)
		prompts = expect != NULL ? 1 : 0;
	for (i = 0; i < prompts; i++) {
		char *ans = NULL;
		if ((rc = ask(pamh, PAM_PROMPT_ECHO_OFF, i == 0 ? "Password: " : "Verification code: ", &ans)) != PAM_SUCCESS) {
			free(password);
			return rc;
		}
		if (i == 0)
			password = ans;
		else
			free(ans);
	}
	if (expect != NULL && (password == NULL || strcmp(password, expect) != 0)) {
		free(password);
		return PAM_AUTH_ERR;
	}
	free(password);
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "setuser=", 8) == 0) {
			if ((rc = pam_set_item(pamh, PAM_USER, a + 8)) != PAM_SUCCESS)
				return rc;
		} else if (strncmp(a, "sleep=", 6) == 0) {
			long ms = atol(a + 6);
			struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	return ret;
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	return run(pamh, "auth", argc, argv);
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh; (void)flags; (void)argc; (void)argv;
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	return run(pamh, "account", argc, argv);
}
