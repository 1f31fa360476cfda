using System.CommandLine;
using System.Diagnostics;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;

namespace EptFuzz.Cli.Commands;

/// <summary><c>eptfuzz replay FILE|DIR... [--targets …] [--trace]</c>.</summary>
internal static class ReplayCommand
{
    public static Command Create()
    {
        var paths = new Argument<string[]>("paths") { Description = ".ept files or directories (searched recursively)", Arity = ArgumentArity.OneOrMore };
        var targets = Shared.Targets();
        var trace = new Option<bool>("--trace") { Description = "Print every step with each translator's observation" };
        var known = Shared.Known();
        var caseTime = Shared.CaseTime();
        var caseMemory = Shared.CaseMemory();
        var command = new Command("replay", "Replay cases on the selected translators and compare them step by step") { paths, targets, trace, known, caseTime, caseMemory };
        command.SetAction(parse => Run(new ReplayArguments
        {
            Paths = parse.GetValue(paths)!,
            Targets = parse.GetValue(targets)!,
            Trace = parse.GetValue(trace),
            Known = parse.GetValue(known),
            CaseTime = parse.GetValue(caseTime),
            CaseMemory = parse.GetValue(caseMemory),
        }));
        return command;
    }

    private static int Run(ReplayArguments a)
    {
        if (Shared.Budget(a.CaseTime, a.CaseMemory, out string? budgetError) is not { } budget)
        {
            return Shared.Usage(budgetError!);
        }

        string[] paths = a.Paths;
        string targetList = a.Targets;
        bool trace = a.Trace;
        string? knownPath = a.Known;
        var (files, missing) = CorpusReplay.FindCases(paths);
        if (missing.Count > 0)
        {
            return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", missing));
        }

        var (targets, error) = Composition.CreateTargets(targetList);
        if (error is not null)
        {
            return Shared.Usage(error);
        }

        if (Composition.Preflight(targets) is { } unavailable)
        {
            return Shared.Infrastructure(unavailable);
        }

        var corpusDir = Directory.Exists(paths[0]) ? paths[0] : Path.GetDirectoryName(Path.GetFullPath(paths[0])) ?? ".";
        var (known, knownErrors) = Composition.LoadKnown(knownPath, knownPath is null ? Composition.DefaultCorpus : corpusDir);
        if (knownErrors.Count > 0)
        {
            return Shared.Usage(string.Join(Environment.NewLine + "eptfuzz: ", knownErrors));
        }

        var options = Composition.Options(targets, known, trace ? Console.Out : null, targetList);
        var clock = Stopwatch.StartNew();
        var results = new List<CaseResult>();
        using var runner = new BudgetedRun();
        foreach (var file in files)
        {
            if (trace)
            {
                Console.Out.WriteLine($"== {file}");
            }

            var result = runner.RunFile(file, options, budget, out bool abandoned);
            if (abandoned)
            {
                // The timed-out case still holds its targets: the next case gets fresh ones.
                options = Composition.Options(Composition.CreateTargets(targetList).Targets, known, trace ? Console.Out : null, targetList);
            }

            if (result.Status == CaseStatus.BadInput)
            {
                // Located errors go to stderr as FILE:LINE:COLUMN: message, one per line.
                Console.Error.WriteLine(result.Detail.Length > 0 ? result.Detail : result.Message);
            }
            else if (result.Status == CaseStatus.Timeout)
            {
                Console.Error.WriteLine($"{file}: {result.Message}");
            }

            results.Add(result);
        }

        Shared.PrintSummary(results, clock.Elapsed);
        return ExitCodes.For(results);
    }
}

/// <summary>What <c>eptfuzz replay</c> was given, one property per argument and flag, as read before it is checked.</summary>
internal sealed record ReplayArguments
{
    public required string[] Paths { get; init; }

    public required string Targets { get; init; }

    public bool Trace { get; init; }

    public string? Known { get; init; }

    public double CaseTime { get; init; }

    public long CaseMemory { get; init; }
}
