using System.CommandLine;
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
        foreach (var r in results.Where(r => r.Status != CaseStatus.Passed))
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
