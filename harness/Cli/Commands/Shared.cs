using System.CommandLine;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Running;
using Spectre.Console;

namespace EptFuzz.Cli.Commands;

/// <summary>Options and output shared by the commands.</summary>
internal static class Shared
{
    public static Option<string> Targets() => new("--targets")
    {
        Description = $"Comma-separated translators, baseline first: {string.Join(", ", Composition.TargetNames)}",
        DefaultValueFactory = _ => Composition.DefaultTargets,
    };

    public static Option<string?> Known() => new("--known")
    {
        Description = "Known-divergences file (default: known-divergences.txt in the corpus directory)",
    };

    public static Option<double> CaseTime() => new("--case-time")
    {
        Description = "Seconds one case may run; a case whose planned cost exceeds it is refused before it runs (exit 2), one that runs past it is a timeout (exit 3)",
        DefaultValueFactory = _ => CaseBudget.Default.Time.TotalSeconds,
    };

    public static Option<long> CaseMemory() => new("--case-memory")
    {
        Description = "MiB the page entries a case's maps may create are planned to take; a case over it is refused before it runs (exit 2)",
        DefaultValueFactory = _ => CaseBudget.Default.MemoryBytes >> 20,
    };

    /// <summary>The per-case budget from <c>--case-time</c> and <c>--case-memory</c>, or a usage error.</summary>
    public static CaseBudget? Budget(double seconds, long mebibytes, out string? error)
    {
        error = !(seconds > 0 && seconds <= 86400) ? $"--case-time: {seconds} is not a number of seconds in (0, 86400]"
            : mebibytes is < 1 or > (1L << 30) ? $"--case-memory: {mebibytes} is not a number of MiB in [1, 2^30]"
            : null;
        return error is null ? new CaseBudget { Time = TimeSpan.FromSeconds(seconds), MemoryBytes = mebibytes << 20 } : null;
    }

    public static int Usage(string message)
    {
        Console.Error.WriteLine($"eptfuzz: {message}");
        return ExitCodes.BadInput;
    }

    /// <summary>An infrastructure failure said in one line (exit 3): never a finding.</summary>
    public static int Infrastructure(string message)
    {
        Console.Error.WriteLine($"eptfuzz: {message}");
        return ExitCodes.Infrastructure;
    }

    /// <summary>The short summary table for people; the details of every case that did not pass come first.</summary>
    public static void PrintSummary(IReadOnlyList<CaseResult> results, TimeSpan elapsed)
    {
        foreach (var r in results.Where(r => r.Status == CaseStatus.Unsupported))
        {
            AnsiConsole.MarkupLine($"[grey]unsupported {Markup.Escape(r.File)}: {Markup.Escape(r.Message)}[/]");
        }

        foreach (var r in results.Where(r => r.Status is not (CaseStatus.Passed or CaseStatus.Unsupported)))
        {
            var colour = r.Status == CaseStatus.KnownDivergence ? "yellow" : "red";
            AnsiConsole.MarkupLine($"[{colour}]{Markup.Escape(r.Status.ToString())}[/] {Markup.Escape(r.File)}");
            AnsiConsole.WriteLine("  " + r.Message);
            if (r.KnownReason is not null)
            {
                AnsiConsole.WriteLine("  known: " + r.KnownReason);
            }

            foreach (var line in r.Detail.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                AnsiConsole.WriteLine("  " + line);
            }
        }

        var table = new Table().Border(TableBorder.Rounded).AddColumn("result").AddColumn(new TableColumn("cases").RightAligned());
        foreach (var status in Enum.GetValues<CaseStatus>())
        {
            int n = results.Count(r => r.Status == status);
            if (n > 0 || status == CaseStatus.Passed)
            {
                table.AddRow(status.ToString(), n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        table.AddRow("probes compared", results.Sum(r => r.Counters.Compared).ToString(System.Globalization.CultureInfo.InvariantCulture));
        table.AddRow("stale-allowed", results.Sum(r => r.Counters.StaleAllowed).ToString(System.Globalization.CultureInfo.InvariantCulture));
        table.AddRow("unsupported", results.Sum(r => r.Counters.Unsupported).ToString(System.Globalization.CultureInfo.InvariantCulture));
        table.AddRow("expectations", results.Sum(r => r.Counters.Expectations).ToString(System.Globalization.CultureInfo.InvariantCulture));
        table.Caption($"{results.Count} case(s) in {elapsed.TotalSeconds:0.00} s");
        AnsiConsole.Write(table);
    }
}
