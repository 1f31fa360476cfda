using EptFuzz.Reference;
using EptFuzz.Reference.Rules;

namespace EptFuzz.Reference.Tests;

/// <summary>One VM-entry row: capabilities, EPTP, MBEC control, and the verdict (EPTP-CHK-1 … 5, EPT-MBEC-1).</summary>
internal sealed record VmEntryCase(string Name, ProcessorCapabilities Capabilities, ulong Eptp, bool Mbec, bool Succeeds, RuleId Rule)
{
    public VmEntryVerdict Evaluate() => EptModel.CheckVmEntry(Capabilities, new Eptp(Eptp), new VmExecutionControls(Mbec));

    private const ulong Root = 0x10_0000;
    private const ulong Wb = 6, Uc = 0, Walk4 = 3 << 3, Walk5 = 4 << 3, Ad = 1 << 6;

    private static readonly ProcessorCapabilities Full = new() { PageWalkLength5 = true, ModeBasedExecuteControl = true, SupervisorShadowStackControl = true };
    private static readonly ProcessorCapabilities Bare = new()
    {
        EptpUncacheable = false, EptpWriteBack = false, PageWalkLength4 = false, AccessedDirtyFlags = false, MaxPhysicalAddressWidth = 36,
    };

    public static IEnumerable<VmEntryCase> Rows()
    {
        yield return new("WbWalk4_Ok", ProcessorCapabilities.Default, Root | Wb | Walk4, false, true, RuleId.Eptp1);
        yield return new("UcWalk4Ad_Ok", ProcessorCapabilities.Default, Root | Uc | Walk4 | Ad, false, true, RuleId.EptCap1);
        yield return new("Walk5WithSupport_Ok", Full, Root | Wb | Walk5, true, true, RuleId.Eptp1);

        // EPTP-CHK-1: the memory type must be UC (CAP[8]) or WB (CAP[14]).
        for (ulong type = 1; type < 8; type++)
        {
            if (type != 6)
            {
                yield return new($"MemoryType{type}_Fails", Full, Root | type | Walk4, false, false, RuleId.EptpChk1);
            }
        }

        yield return new("UcWithoutCap8_Fails", Bare with { PageWalkLength4 = true }, Root | Uc | Walk4, false, false, RuleId.EptpChk1);
        yield return new("WbWithoutCap14_Fails", Bare with { PageWalkLength4 = true }, Root | Wb | Walk4, false, false, RuleId.EptpChk1);

        // EPTP-CHK-2: the walk length must be 4 (CAP[6]) or 5 (CAP[7]).
        for (ulong length = 0; length < 8; length++)
        {
            if (length is not 3 and not 4)
            {
                yield return new($"WalkLengthField{length}_Fails", Full, Root | Wb | (length << 3), false, false, RuleId.EptpChk2);
            }
        }

        yield return new("Walk5WithoutCap7_Fails", ProcessorCapabilities.Default, Root | Wb | Walk5, false, false, RuleId.EptpChk2);
        yield return new("Walk4WithoutCap6_Fails", ProcessorCapabilities.Default with { PageWalkLength4 = false }, Root | Wb | Walk4, false, false, RuleId.EptpChk2);

        // EPTP-CHK-3: A/D needs CAP[21].
        yield return new("AdWithoutCap21_Fails", ProcessorCapabilities.Default with { AccessedDirtyFlags = false }, Root | Wb | Walk4 | Ad, false, false, RuleId.EptpChk3);

        // EPTP-CHK-4: bit 7 needs CAP[23] (the SDM's EPTP table; KVM rejects it always).
        yield return new("Bit7WithoutCap23_Fails", ProcessorCapabilities.Default, Root | Wb | Walk4 | (1 << 7), false, false, RuleId.EptpChk4);
        yield return new("Bit7WithCap23_Ok", Full, Root | Wb | Walk4 | (1 << 7), false, true, RuleId.Eptp1);

        // EPTP-CHK-5: bits 11:8 and 63:N are reserved.
        for (int bit = 8; bit <= 11; bit++)
        {
            yield return new($"ReservedBit{bit}_Fails", Full, Root | Wb | Walk4 | (1UL << bit), false, false, RuleId.EptpChk5);
        }

        yield return new("RootAboveMaxPhyAddr36_Fails", Bare with { EptpWriteBack = true, PageWalkLength4 = true }, (1UL << 36) | Wb | Walk4, false, false, RuleId.EptpChk5);
        yield return new("Bit63_Fails", Full, (1UL << 63) | Root | Wb | Walk4, false, false, RuleId.EptpChk5);
        yield return new("RootBelowMaxPhyAddr36_Ok", Bare with { EptpWriteBack = true, PageWalkLength4 = true }, (1UL << 35) | Wb | Walk4, false, true, RuleId.Eptp1);

        // EPT-MBEC-1: the MBEC control needs the processor's allowed-1 setting.
        yield return new("MbecWithoutSupport_Fails", ProcessorCapabilities.Default, Root | Wb | Walk4, true, false, RuleId.EptMbec1);
        yield return new("MbecWithSupport_Ok", Full, Root | Wb | Walk4, true, true, RuleId.Eptp1);

        // Several failures at once: VM entry fails once, every failing check is reported.
        yield return new("EverythingWrong_Fails", Bare, 0xFFFF_FFFF_FFFF_FFFF, true, false, RuleId.EptpChk3);
    }
}

public sealed class VmEntryTests
{
    public static TheoryData<string> Rows()
    {
        var data = new TheoryData<string>();
        foreach (VmEntryCase row in VmEntryCase.Rows())
        {
            data.Add(row.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Rows))]
    public void Row(string name)
    {
        VmEntryCase row = VmEntryCase.Rows().Single(r => r.Name == name);
        VmEntryVerdict verdict = row.Evaluate();
        Assert.Equal(row.Succeeds, verdict.Succeeds);
        Assert.True(verdict.Fired.Contains(row.Rule), $"{name}: {RuleCatalog.Get(row.Rule).Name} did not fire");
    }

    [Fact]
    public void FailedVmEntry_AccessNeverRuns_NoWalkNoWrites()
    {
        var scenario = new Scenario(accessedDirty: true) { RawEptp = 0x10_0000 | 6 | (3 << 3) | (1 << 9) }.Map(0x1000, 0x2000);
        Evaluation evaluation = scenario.Run(Expect.WriteAt(0x1000));
        Assert.Same(VmEntryFailed.Instance, evaluation.Outcome);
        Assert.Empty(evaluation.Walk);
        Assert.Empty(evaluation.Writes);
        Assert.True(evaluation.Fired.Contains(RuleId.EptpChk5));
    }
}
