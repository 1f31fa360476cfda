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
        command.SetAction(parse =>
        {
            string targetList = parse.GetValue(targets)!;
            var (list, error) = Composition.CreateTargets(targetList);
            if (error is not null)
            {
                return Shared.Usage(error);
            }

            var (knownDivergences, knownErrors) = Composition.LoadKnown(parse.GetValue(known), Composition.DefaultCorpus);
            if (knownErrors.Count > 0)
            {
                return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
            }

            if (parse.GetValue(reduceTime) is var seconds && seconds < 0)
            {
                return Shared.Usage("--reduce-time must not be negative");
            }

            var result = ReduceCommand.Run(parse.GetValue(file)!, Composition.Options(list, knownDivergences, null, targetList), TimeSpan.FromSeconds(seconds), parse.GetValue(output), parse.GetValue(emitTest));
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
        });
        return command;
    }
}
