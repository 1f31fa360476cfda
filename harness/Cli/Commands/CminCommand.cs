using System.CommandLine;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli.Commands;

/// <summary><c>eptfuzz cmin INPUT... --out DIR</c>: the smallest set of cases that keeps every coverage feature.</summary>
internal static class CminCommand
{
    public static Command Create()
    {
        var inputs = new Argument<string[]>("inputs") { Description = ".ept files or directories (a campaign's queue/, a corpus)", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--out") { Description = "New directory for the kept cases", Required = true };
        var targets = Shared.Targets();
        var known = Shared.Known();
        var command = new Command("cmin", "Copy the smallest set of cases that sets every coverage feature the inputs set (AFL's cmin, libFuzzer's -merge)") { inputs, output, targets, known };
        command.SetAction(parse =>
        {
            string targetList = parse.GetValue(targets)!;
            var (probe, error) = Composition.CreateTargets(targetList);
            if (error is not null)
            {
                return Shared.Usage(error);
            }

            if (Composition.Preflight(probe) is { } unavailable)
            {
                return Shared.Infrastructure(unavailable);
            }

            var (knownDivergences, knownErrors) = Composition.LoadKnown(parse.GetValue(known), "corpus");
            if (knownErrors.Count > 0)
            {
                return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
            }

            MinimizeSummary summary = CorpusMinimizer.Minimize(
                parse.GetValue(inputs)!,
                parse.GetValue(output)!,
                () => Composition.Options(Composition.CreateTargets(targetList).Targets, knownDivergences, null, targetList));
            foreach (string warning in summary.Warnings)
            {
                Console.Error.WriteLine($"eptfuzz: warning: {warning}");
            }

            Console.Out.WriteLine($"kept {summary.Kept} of {summary.Cases} cases in {parse.GetValue(output)}: together they set all {summary.Features} coverage features the inputs set");
            return ExitCodes.Ok;
        });
        return command;
    }
}
