using System.CommandLine;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli.Commands;

/// <summary><c>eptfuzz reduce FILE [--out PATH] [--reduce-time SEC] [--emit-test]</c>.</summary>
internal static class ReduceCommandLine
{
    public static Command Create()
    {
        var file = new Argument<string>("file") { Description = "A diverging .ept case" };
        var output = new Option<string?>("--out") { Description = "Where to write the reduced case (default FILE.reduced.ept)" };
        var reduceTime = new Option<double>("--reduce-time") { Description = "Seconds the reduction may take", DefaultValueFactory = _ => Reducer.DefaultCap.TotalSeconds };
        var emitTest = new Option<bool>("--emit-test") { Description = "Also write an xunit regression test ready to paste" };
        var targets = Shared.Targets();
        var known = Shared.Known();
        var command = new Command("reduce", "Minimise a diverging case, keeping its divergence signature") { file, output, reduceTime, emitTest, targets, known };
        command.SetAction(parse => Run(new ReduceArguments
        {
            File = parse.GetValue(file)!,
            Out = parse.GetValue(output),
            ReduceTime = parse.GetValue(reduceTime),
            EmitTest = parse.GetValue(emitTest),
            Targets = parse.GetValue(targets)!,
            Known = parse.GetValue(known),
        }));
        return command;
    }

    private static int Run(ReduceArguments a)
    {
        string targetList = a.Targets;
        var (list, error) = Composition.CreateTargets(targetList);
        if (error is not null)
        {
            return Shared.Usage(error);
        }

        var (knownDivergences, knownErrors) = Composition.LoadKnown(a.Known, Composition.DefaultCorpus);
        if (knownErrors.Count > 0)
        {
            return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
        }

        if (a.ReduceTime < 0)
        {
            return Shared.Usage("--reduce-time must not be negative");
        }

        var result = ReduceCommand.Run(a.File, Composition.Options(list, knownDivergences, null, targetList), TimeSpan.FromSeconds(a.ReduceTime), a.Out, a.EmitTest);
        (result.ExitCode == ExitCodes.BadInput ? Console.Error : Console.Out).WriteLine(result.Message);
        if (result.OutputPath is not null)
        {
            Console.Out.WriteLine($"reduced: {result.OutputPath}");
        }

        if (result.TestPath is not null)
        {
            Console.Out.WriteLine($"regression test: {result.TestPath}");
        }

        if (result.Replay is not null)
        {
            Console.Out.WriteLine($"replay: {result.Replay}");
        }

        return result.ExitCode;
    }
}

/// <summary>What <c>eptfuzz reduce</c> was given, one property per argument and flag, as read before it is checked.</summary>
internal sealed record ReduceArguments
{
    public required string File { get; init; }

    public string? Out { get; init; }

    public double ReduceTime { get; init; }

    public bool EmitTest { get; init; }

    public required string Targets { get; init; }

    public string? Known { get; init; }
}
