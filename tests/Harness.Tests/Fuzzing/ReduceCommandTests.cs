using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Harness.Tests.Fuzzing.Support;

namespace EptFuzz.Harness.Tests.Fuzzing;

public sealed class ReduceCommandTests : IDisposable
{
    private readonly DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-reduce-");

    public void Dispose() => temp.Delete(recursive: true);

    [Fact]
    public void ReduceFile_WritesTheReducedCase_TheTest_AndTheReplayCommand()
    {
        var filler = CaseGenerator.Generate(11, new GeneratorProfile { Steps = 30, Cpu = CpuProfile.Default });
        var steps = new List<Step>(filler.Steps)
        {
            new MapStep(new(0x3fe0_0000), new(0x8000_0000), 1UL << 21, Contract.EptPermissions.ReadAccess),
            AccessStep.Physical(Contract.AccessKind.Write, new(0x3fe0_0000)),
        };
        string input = Path.Combine(temp.FullName, "big.ept");
        File.WriteAllText(input, CasePrinter.Print(new EptCase(steps, ["found by: eptfuzz fuzz --seed 0x1 (generator 1)", "case seed: 0x00000000000000aa"])));

        var r = ReduceCommand.Run(input, TestTargets.Options(planted: true), Reducer.DefaultCap, emitTest: true);

        Assert.Equal(ExitCodes.Divergence, r.ExitCode);
        Assert.Equal(Path.Combine(temp.FullName, "big.reduced.ept"), r.OutputPath);
        var reduced = CaseFile.Read(r.OutputPath!);
        Assert.True(reduced.Succeeded, reduced.ErrorText());
        Assert.True(reduced.Case.Steps.Length < steps.Count);
        Assert.Contains("input case seed: 0x00000000000000aa", reduced.Case.HeaderComments);
        Assert.Contains(reduced.Case.HeaderComments, h => h.StartsWith("found by: eptfuzz reduce ", StringComparison.Ordinal));
        Assert.True(File.Exists(r.TestPath));
        Assert.Contains("big.reduced.ept", r.Replay, StringComparison.Ordinal);
    }

    [Fact]
    public void ReduceFile_OfAPassingOrMalformedFile_SaysSo()
    {
        string ok = Path.Combine(temp.FullName, "ok.ept");
        File.WriteAllText(ok, CasePrinter.Print(CaseGenerator.Generate(1, GeneratorProfile.Default)));
        var r = ReduceCommand.Run(ok, TestTargets.Options(), Reducer.DefaultCap);
        Assert.Equal(ExitCodes.Ok, r.ExitCode);
        Assert.Contains("nothing to reduce", r.Message, StringComparison.Ordinal);
        Assert.Null(r.OutputPath);

        string bad = Path.Combine(temp.FullName, "bad.ept");
        File.WriteAllText(bad, "eptcase 1\nmap gpa=\n");
        r = ReduceCommand.Run(bad, TestTargets.Options(), Reducer.DefaultCap);
        Assert.Equal(ExitCodes.BadInput, r.ExitCode);
        Assert.Contains("bad.ept:2:", r.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StatusReporter_PrintsPlainLines_OrRedrawsOnATerminal()
    {
        var status = new CampaignStatus { Executions = 10, RulesHit = 3, RulesModelled = 9 };
        var plain = new StringWriter();
        var p = new StatusReporter(plain, terminal: false);
        p.Report(status);
        p.Report(status);
        Assert.Equal(2, plain.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.Contains("rules 3/9", plain.ToString(), StringComparison.Ordinal);

        var tty = new StringWriter();
        var t = new StatusReporter(tty, terminal: true);
        t.Report(status);
        t.Report(status);
        t.Finish();
        Assert.Equal(2, tty.ToString().Count(c => c == '\r'));
        Assert.Single(tty.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
