namespace EptFuzz.Reference.Rules;

/// <summary>
/// One member per rule id of shared/spec/ept-rules.md, in the order of that file. The numeric value
/// is the rule's index in a <see cref="RuleSet"/> (stable: append new ids at the end only).
/// Whether a rule is modelled, and why not, is in <see cref="RuleCatalog"/>.
/// </summary>
public enum RuleId : byte
{
    /// <summary>EPT-SCOPE-1</summary>
    EptScope1 = 0,
    /// <summary>EPT-SCOPE-2</summary>
    EptScope2 = 1,
    /// <summary>EPT-SCOPE-3</summary>
    EptScope3 = 2,
    /// <summary>EPTP-1</summary>
    Eptp1 = 3,
    /// <summary>EPTP-2</summary>
    Eptp2 = 4,
    /// <summary>EPTP-CHK-1</summary>
    EptpChk1 = 5,
    /// <summary>EPTP-CHK-2</summary>
    EptpChk2 = 6,
    /// <summary>EPTP-CHK-3</summary>
    EptpChk3 = 7,
    /// <summary>EPTP-CHK-4</summary>
    EptpChk4 = 8,
    /// <summary>EPTP-CHK-5</summary>
    EptpChk5 = 9,
    /// <summary>EPTP-CHK-6</summary>
    EptpChk6 = 10,
    /// <summary>EPT-CAP-1</summary>
    EptCap1 = 11,
    /// <summary>EPT-WALK-1</summary>
    EptWalk1 = 12,
    /// <summary>EPT-WALK-2</summary>
    EptWalk2 = 13,
    /// <summary>EPT-WALK-3</summary>
    EptWalk3 = 14,
    /// <summary>EPT-WALK-4</summary>
    EptWalk4 = 15,
    /// <summary>EPT-ENTRY-1</summary>
    EptEntry1 = 16,
    /// <summary>EPT-ENTRY-2</summary>
    EptEntry2 = 17,
    /// <summary>EPT-ENTRY-3</summary>
    EptEntry3 = 18,
    /// <summary>EPT-ENTRY-4</summary>
    EptEntry4 = 19,
    /// <summary>EPT-ENTRY-5</summary>
    EptEntry5 = 20,
    /// <summary>EPT-ENTRY-6</summary>
    EptEntry6 = 21,
    /// <summary>EPT-PRESENT-1</summary>
    EptPresent1 = 22,
    /// <summary>EPT-PRESENT-2</summary>
    EptPresent2 = 23,
    /// <summary>EPT-MISCONFIG-1</summary>
    EptMisconfig1 = 24,
    /// <summary>EPT-MISCONFIG-2</summary>
    EptMisconfig2 = 25,
    /// <summary>EPT-MISCONFIG-3</summary>
    EptMisconfig3 = 26,
    /// <summary>EPT-MISCONFIG-4</summary>
    EptMisconfig4 = 27,
    /// <summary>EPT-MISCONFIG-5</summary>
    EptMisconfig5 = 28,
    /// <summary>EPT-MISCONFIG-6</summary>
    EptMisconfig6 = 29,
    /// <summary>EPT-MISCONFIG-7</summary>
    EptMisconfig7 = 30,
    /// <summary>EPT-MISCONFIG-8</summary>
    EptMisconfig8 = 31,
    /// <summary>EPT-MISCONFIG-9</summary>
    EptMisconfig9 = 32,
    /// <summary>EPT-ACCESS-1</summary>
    EptAccess1 = 33,
    /// <summary>EPT-VIOL-1</summary>
    EptViol1 = 34,
    /// <summary>EPT-VIOL-2</summary>
    EptViol2 = 35,
    /// <summary>EPT-VIOL-3</summary>
    EptViol3 = 36,
    /// <summary>EPT-VIOL-4</summary>
    EptViol4 = 37,
    /// <summary>EPT-VIOL-5</summary>
    EptViol5 = 38,
    /// <summary>EPT-VIOL-6</summary>
    EptViol6 = 39,
    /// <summary>EPT-VIOL-7</summary>
    EptViol7 = 40,
    /// <summary>EPT-ORDER-1</summary>
    EptOrder1 = 41,
    /// <summary>EPT-ORDER-1a</summary>
    EptOrder1a = 42,
    /// <summary>EPT-ORDER-2</summary>
    EptOrder2 = 43,
    /// <summary>EPT-ORDER-3</summary>
    EptOrder3 = 44,
    /// <summary>EPT-GWALK-1</summary>
    EptGwalk1 = 45,
    /// <summary>EPT-GWALK-2</summary>
    EptGwalk2 = 46,
    /// <summary>EPT-GWALK-3</summary>
    EptGwalk3 = 47,
    /// <summary>EPT-GWALK-4</summary>
    EptGwalk4 = 48,
    /// <summary>EPT-MBEC-1</summary>
    EptMbec1 = 49,
    /// <summary>EPT-MBEC-2</summary>
    EptMbec2 = 50,
    /// <summary>EPT-MBEC-3</summary>
    EptMbec3 = 51,
    /// <summary>EPT-MBEC-4</summary>
    EptMbec4 = 52,
    /// <summary>EPT-MBEC-5</summary>
    EptMbec5 = 53,
    /// <summary>EPT-MBEC-6</summary>
    EptMbec6 = 54,
    /// <summary>EPT-MBEC-7</summary>
    EptMbec7 = 55,
    /// <summary>EPT-XO-1</summary>
    EptXo1 = 56,
    /// <summary>EPT-LARGE-1</summary>
    EptLarge1 = 57,
    /// <summary>EPT-LARGE-2</summary>
    EptLarge2 = 58,
    /// <summary>EPT-AD-1</summary>
    EptAd1 = 59,
    /// <summary>EPT-AD-2</summary>
    EptAd2 = 60,
    /// <summary>EPT-AD-3</summary>
    EptAd3 = 61,
    /// <summary>EPT-AD-4</summary>
    EptAd4 = 62,
    /// <summary>EPT-AD-5</summary>
    EptAd5 = 63,
    /// <summary>EPT-AD-6</summary>
    EptAd6 = 64,
    /// <summary>EPT-AD-7</summary>
    EptAd7 = 65,
    /// <summary>EPT-PML-1</summary>
    EptPml1 = 66,
    /// <summary>EPT-MT-1</summary>
    EptMt1 = 67,
    /// <summary>EPT-MT-2</summary>
    EptMt2 = 68,
    /// <summary>EPT-MT-3</summary>
    EptMt3 = 69,
    /// <summary>EPT-MT-4</summary>
    EptMt4 = 70,
    /// <summary>EPT-MT-5</summary>
    EptMt5 = 71,
    /// <summary>EPT-EXITQ-1</summary>
    EptExitq1 = 72,
    /// <summary>EPT-EXITQ-2</summary>
    EptExitq2 = 73,
    /// <summary>EPT-EXITQ-3</summary>
    EptExitq3 = 74,
    /// <summary>EPT-EXIT-1</summary>
    EptExit1 = 75,
    /// <summary>EPT-EXIT-2</summary>
    EptExit2 = 76,
    /// <summary>EPT-VE-1</summary>
    EptVe1 = 77,
    /// <summary>EPT-VE-2</summary>
    EptVe2 = 78,
    /// <summary>EPT-VE-3</summary>
    EptVe3 = 79,
    /// <summary>EPT-VE-4</summary>
    EptVe4 = 80,
    /// <summary>EPT-SSS-1</summary>
    EptSss1 = 81,
    /// <summary>EPT-SSS-2</summary>
    EptSss2 = 82,
    /// <summary>EPT-SPP-1</summary>
    EptSpp1 = 83,
    /// <summary>EPT-PW-1</summary>
    EptPw1 = 84,
    /// <summary>EPT-GPV-1</summary>
    EptGpv1 = 85,
    /// <summary>EPT-CACHE-1</summary>
    EptCache1 = 86,
    /// <summary>EPT-CACHE-2</summary>
    EptCache2 = 87,
    /// <summary>EPT-CACHE-3</summary>
    EptCache3 = 88,
    /// <summary>EPT-CACHE-4</summary>
    EptCache4 = 89,
    /// <summary>EPT-INVEPT-1</summary>
    EptInvept1 = 90,
    /// <summary>EPT-INVEPT-2</summary>
    EptInvept2 = 91,
    /// <summary>EPT-INVEPT-3</summary>
    EptInvept3 = 92,
    /// <summary>EPT-INVEPT-4</summary>
    EptInvept4 = 93,
    /// <summary>EPT-INVEPT-5</summary>
    EptInvept5 = 94,
    /// <summary>EPT-VMFUNC-1</summary>
    EptVmfunc1 = 95,
}
