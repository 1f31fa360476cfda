using EptFuzz.Contract;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;

namespace EptFuzz.Corpus.Tests.Runner;

/// <summary>The case runner: what it reports for planted divergences, crashes, stale windows and expectations.</summary>
public sealed class RunnerTests
{
    private const string Mapped = """
        eptcase 1
        cpu maxphyaddr=46
        eptp mt=WB walk=4 ad=0
        map gpa=0x1000 hpa=0x5000 size=4K perm=rw
        read gpa=0x1008
        write gpa=0x1010
        """;

    private static EptCase Parse(string text)
    {
        var parsed = CaseParser.Parse(text, "test.ept");
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        return parsed.Case!;
    }

    private static CaseResult Run(string text, KnownDivergences? known = null, params ITarget[] targets) =>
        CaseRunner.Run(Parse(text), new RunOptions
        {
            Hypervisor = () => new EptHypervisor(),
            Targets = targets.Length == 0 ? [new ModelTarget(), new ImplTarget()] : targets,
            Known = known ?? KnownDivergences.None,
        });

    private static Observation ShiftHpa(Observation o) => o.Kind == OutcomeKind.Translated ? o with { Hpa = o.Hpa + 0x1000 } : o;

    [Fact]
    public void AgreeingTargets_Pass()
    {
        var result = Run(Mapped);
        Assert.Equal(CaseStatus.Passed, result.Status);
        Assert.Equal(2, result.Counters.Compared);
    }

    [Fact]
    public void PlantedHpaBug_Diverges_AtTheFirstProbe_WithAStableSignature()
    {
        var result = Run(Mapped, null, new ModelTarget(), new RewritingTarget(new ImplTarget(), "broken", ShiftHpa));
        Assert.Equal(CaseStatus.Diverged, result.Status);
        Assert.Equal(5, result.Line);
        Assert.Equal("read.gpa|model:ok|broken:ok|hpa", result.Signature);
        Assert.Contains("replay: ", result.Detail, StringComparison.Ordinal);
        Assert.Contains("ept   PTE", result.Detail, StringComparison.Ordinal);
        Assert.Contains("rules fired: ", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void KnownSignature_IsListedNotFailed()
    {
        var (known, errors) = KnownDivergences.Parse("read.gpa|model:ok|broken:ok|hpa a planted test deviation\n", "kd");
        Assert.Empty(errors);
        var result = Run(Mapped, known, new ModelTarget(), new RewritingTarget(new ImplTarget(), "broken", ShiftHpa));
        Assert.Equal(CaseStatus.KnownDivergence, result.Status);
        Assert.Equal("a planted test deviation", result.KnownReason);
        Assert.False(result.IsFailure);
    }

    [Fact]
    public void BatchTarget_IsComparedAfterTheCase()
    {
        var result = Run(Mapped, null, new ModelTarget(), new RewritingTarget(new ModelTarget(), "batch", ShiftHpa, batch: true));
        Assert.Equal(CaseStatus.Diverged, result.Status);
        Assert.Equal("read.gpa|model:ok|batch:ok|hpa", result.Signature);

        var clean = Run(Mapped, null, new ModelTarget(), new RewritingTarget(new ModelTarget(), "batch", o => o, batch: true));
        Assert.Equal(CaseStatus.Passed, clean.Status);
        Assert.Equal(2, clean.Counters.Compared);
    }

    [Fact]
    public void ThreeTranslators_TriageNamesWhoIsOutOfStep()
    {
        var oracle = new RewritingTarget(new ModelTarget(), "oracle", o => o, batch: true);
        var implBug = Run(Mapped, null, new ModelTarget(), new RewritingTarget(new ImplTarget(), "broken", ShiftHpa), oracle);
        Assert.Equal(CaseStatus.Diverged, implBug.Status);
        Assert.Contains("triage: broken differs from model and oracle: an implementation bug", implBug.Message, StringComparison.Ordinal);

        var oracleOff = new RewritingTarget(new ModelTarget(), "oracle", ShiftHpa, batch: true);
        var deviation = Run(Mapped, null, new ModelTarget(), new ImplTarget(), oracleOff);
        Assert.Equal(CaseStatus.Diverged, deviation.Status);
        Assert.Contains("triage: oracle differs from model and impl: a model bug or an emulator deviation", deviation.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TargetThatThrows_IsAFindingWithItsStack()
    {
        var result = Run(Mapped, null, new ModelTarget(), new ThrowingTarget(new InvalidOperationException("planted")));
        Assert.Equal(CaseStatus.Diverged, result.Status);
        Assert.Equal("read.gpa|thrower:crash|-:-|InvalidOperationException", result.Signature);
        Assert.Contains("planted", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void InfrastructureFailure_IsNeverAFinding()
    {
        var result = Run(Mapped, null, new ModelTarget(), new ThrowingTarget(new TargetFailureException("thrower", "emulator hung")));
        Assert.Equal(CaseStatus.InfrastructureFailure, result.Status);
        Assert.Null(result.Signature);
        Assert.Equal(ExitCodes.Infrastructure, ExitCodes.For([result]));
    }

    [Fact]
    public void AccessThroughARawEditBeforeInvept_IsStaleAllowed_AndComparedAfterIt()
    {
        const string text = """
            eptcase 1
            cpu maxphyaddr=46
            eptp mt=WB walk=4 ad=0
            map gpa=0x1000 hpa=0x5000 size=4K perm=rw
            write gpa=0x1000
            edit gpa=0x1000 level=pte clear=0x2
            write gpa=0x1000
            invept type=single
            write gpa=0x1000 => violation qual=0x18a
            """;
        var result = Run(text);
        Assert.Equal(CaseStatus.Passed, result.Status);
        Assert.Equal(1, result.Counters.StaleAllowed);
        Assert.Equal(2, result.Counters.Compared);
    }

    [Fact]
    public void StaleAccessThatSplitsAccessedDirtyState_EndsComparison()
    {
        // The raw edit clears D; the model's fresh walk sets it again, the implementation's cached
        // dirty translation does not. Both are right, and the entry's D now differs for good.
        const string text = """
            eptcase 1
            cpu maxphyaddr=46 ad=1
            eptp mt=WB walk=4 ad=1
            map gpa=0x1000 hpa=0x5000 size=4K perm=rw
            write gpa=0x1000
            edit gpa=0x1000 level=pte clear=0x200
            write gpa=0x1000
            invept type=single
            entry gpa=0x1000 level=pte
            """;
        var result = Run(text);
        Assert.Equal(CaseStatus.Passed, result.Status);
        Assert.Equal(2, result.Counters.StaleAllowed);
    }

    [Fact]
    public void WrongExpectation_FailsAtItsLine()
    {
        var result = Run(Mapped.Replace("write gpa=0x1010", "write gpa=0x1010 => violation qual=0x18a", StringComparison.Ordinal));
        Assert.Equal(CaseStatus.ExpectationFailed, result.Status);
        Assert.Equal(6, result.Line);
        Assert.Contains("expected violation, got ok", result.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OperationResultAgainstIntent_IsChecked()
    {
        // A translator that agrees with the implementation but not with what the operations meant:
        // the access after an unmap must be a violation, whatever both targets say.
        const string text = """
            eptcase 1
            cpu maxphyaddr=46
            eptp mt=WB walk=4 ad=0
            map gpa=0x1000 hpa=0x5000 size=4K perm=rw
            read gpa=0x1000
            """;
        var result = Run(text, null, new RewritingTarget(new ModelTarget(), "lying-model", ShiftHpa), new RewritingTarget(new ImplTarget(), "lying-impl", ShiftHpa));
        Assert.Equal(CaseStatus.Diverged, result.Status);
        Assert.Equal("read.gpa|lying-model:ok|intent:expected|hpa", result.Signature);
    }
}
