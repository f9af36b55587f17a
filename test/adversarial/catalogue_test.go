package adversarial

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mppd/mppd/internal/dialogue"
)

// catalogue says, for every case of the hostile-input catalogue
// (docs/hostile-inputs.md, which lists the same tests), where it is tested:
// "dlg" for the dialogues in testdata and ../../protocol/testdata/dialogues
// (file names start with the case number), test functions by name (anywhere in the repository), and
// "manual: why" for what cannot be automated here. TestCatalogueIndex
// checks that every case is listed and that every named test exists.
var catalogue = map[int][]string{
	1: {"dlg"}, 2: {"dlg"}, 3: {"dlg"}, 4: {"dlg"}, 5: {"dlg"}, 6: {"dlg"}, 7: {"dlg", "TestDataResults"},
	8: {"dlg", "TestUnknownVerbLoggedShort"}, 9: {"dlg", "TestCrossProtocol"}, 10: {"dlg", "TestQuitEveryState"},
	11: {"dlg", "TestPipelinedWrongPassword"}, 12: {"dlg", "TestJunkLimit"},
	13: {"dlg", "TestBadInputNeverReachesPAM"}, 14: {"dlg"}, 15: {"dlg"}, 16: {"dlg"}, 17: {"dlg", "TestSmuggling"},
	18: {"dlg"}, 19: {"dlg", "TestDotTransparency"}, 20: {"dlg", "TestEmptyMessage"},
	21: {"dlg", "TestUserUnknownStill250"},
	22: {"TestAuthFailureFloorEveryReason", "TestAuthFailureFloor",
		"manual: the two-sample comparison of 200 latencies per outcome is not automated: its verdict would hang on the wall-clock behaviour of a loaded CI machine; the tests check instead that every outcome (unknown user, bad password, locked, a name the backend refuses, backend unavailable) takes at least the floor"},
	23: {"dlg", "TestEmptyPasswordNoIO", "TestIntegrationEmptyPasswordSendsNoBind"},
	24: {"dlg", "TestIntegrationFilterInjection", "TestExpandFilter", "TestExpandDN"},
	25: {"TestPAMUserIsReadBack", "TestAddressesAndAccount"},
	26: {"TestConversation"},
	27: {"TestSystemRefusals", "TestLDAPRefusedAndUnavailable"},
	28: {"dlg", "TestIntegrationRefusedAccounts", "TestLookupNSSSystemAccounts"},
	29: {"dlg", "TestLongLine"},
	30: {"TestThrottle", "TestRepeatedCredentialsDoNotGrow", "TestPenaltyEscalates", "TestThrottleEndToEnd", "TestGuessesPerHour"},
	31: {"TestResourceConnectionFlood", "TestParallelLoginsReserve", "TestPerClientCap"},
	32: {"dlg", "TestLogInjection", "TestFail2banThrottledLog", "TestFail2banFilter"},
	33: {"dlg", "TestPasswordNotLogged", "TestNoPasswordHeld", "TestIntegrationChildCredentials",
		"manual: core dumps are not provoked; RLIMIT_CORE of the sendmail child is checked by TestIntegrationChildCredentials"},
	34: {"dlg", "FuzzArgv", "TestUnsafeRecipients"}, 35: {"dlg", "FuzzArgv"}, 36: {"dlg"}, 37: {"dlg", "TestResent"},
	38: {"dlg", "TestBccRemoved"}, 39: {"dlg"}, 40: {"TestGeneratedFieldsAreSingleFields", "TestUserSyntax"}, 41: {"dlg", "TestSenderForgery"},
	42: {"dlg", "TestPathological", "TestWorstCaseWithinLimits", "FuzzPrepare"},
	43: {"dlg", "TestResourceEndlessLine", "TestEndlessLine"}, 44: {"dlg", "TestOversizedMessage"},
	45: {"dlg", "TestResourceHeaderBomb", "TestHeaderBomb"}, 46: {"dlg", "TestTooManyRecipients"},
	47: {"dlg", "TestMailLoop"}, 48: {"dlg", "TestIdleTimeout"},
	49: {"TestResourceSlowloris", "TestMinDataRate", "TestSessionTimeout",
		"manual: the literal 1 byte every 250 s against the real 5 m / 20 m timeouts would take 20 minutes; the test scales the timeouts down"},
	50: {"TestNonReadingClient"},
	51: {"TestResourceConnectionFlood", "TestAcceptBackoff", "TestTotalCap",
		"manual: 12,000 connections against the real 10,000 cap need more than the test's file descriptors; TestResourceConnectionFlood runs 2,000 against a cap of 1,500 from 2,000 loopback addresses"},
	52: {"TestThreadsBounded", "TestQueueWaitsForWorker", "TestCapAndQueueTimeout"},
	53: {"TestIntegrationFailover", "TestLDAPRefusedAndUnavailable",
		"manual: dropped SYNs need a firewall rule on the test host; an unroutable address is not used (tests only touch loopback)"},
	54: {"TestStalledServerTimesOut"}, 55: {"TestPooledConnectionDeadOnUse", "TestIntegrationIdleClosedByServer"},
	56: {"TestIntegrationTLS"}, 57: {"TestIntegrationSearchThenBind"},
	58: {"TestMissingModuleIsUnavailable", "TestMissingServiceFile", "TestNoLeakOverManyTransactions"},
	59: {"TestMissingSendmail", "TestIntegrationMissingSendmail"}, 60: {"TestMapExit", "TestMapCodeIsTotal"},
	61: {"TestFaults"}, 62: {"TestFaults"},
	63: {"TestLowStagingSpace", "TestSendmailTempfail",
		"manual: a really full Postfix spool (postdrop failing on ENOSPC) needs a filesystem filled on the test host; the exit status it causes (75) is tested"},
	64: {"TestClientGoneMidText"}, 65: {"TestClientGoneAfterDot"},
	66: {"TestShutdownIdle", "TestShutdownIdleSession", "TestDrainTimeout"},
	67: {"TestShutdownDuringText", "TestSIGTERMDuringData"}, 68: {"TestShutdownDuringMessage"},
	69: {"TestStdinFromStagedCopy"}, 70: {"TestIntegrationChildCredentials", "TestRecordedChild"},
	71: {"TestSocketActivationRefusals", "TestSocketActivationTwoListeners", "TestFromActivation"},
	72: {"TestOneThreadPerTransaction", "TestSystemConcurrentLogins",
		"manual: pam_loginuid and pam_faillock in the stack under GOMAXPROCS 1 and 16 are not exercised; one locked OS thread per transaction is"},
	73: {"dlg", "TestSendLimitEndToEnd", "TestSendLimitMessages", "TestSendLimitRecipients", "TestEdgeOfTheHour",
		"TestSeveralLimits", "TestParallelReserve", "TestTableCap", "TestFail2banFilter"},
}

func TestCatalogueIndex(t *testing.T) {
	// Every test and fuzz function in the repository.
	defined := map[string]bool{}
	re := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	filepath.WalkDir("../..", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err == nil {
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				defined[m[1]] = true
			}
		}
		return nil
	})
	var scripts []*dialogue.Script
	for _, dir := range []string{"testdata", "../../protocol/testdata/dialogues"} {
		s, err := dialogue.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		scripts = append(scripts, s...)
	}
	dlg := map[int]bool{}
	for _, s := range scripts {
		var n int
		if _, err := fmt.Sscanf(s.Name, "%d-", &n); err != nil {
			t.Errorf("dialogue %s does not start with its case number", s.Name)
		}
		dlg[n] = true
		if _, ok := catalogue[n]; !ok || catalogue[n][0] != "dlg" {
			t.Errorf("dialogue %s: case %d does not list dlg", s.Name, n)
		}
	}
	for n := 1; n <= 73; n++ {
		refs, ok := catalogue[n]
		if !ok {
			t.Errorf("case %d is not in the index", n)
		}
		for _, r := range refs {
			switch {
			case r == "dlg":
				if !dlg[n] {
					t.Errorf("case %d: no dialogue %02d-*.dlg", n, n)
				}
			case strings.HasPrefix(r, "manual: "):
			case !defined[r]:
				t.Errorf("case %d: no test named %s", n, r)
			}
		}
	}
}
