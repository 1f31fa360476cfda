using System.CommandLine;
using EptFuzz.Harness.Fuzzing;

namespace EptFuzz.Cli.Commands;

/// <summary><c>eptfuzz report OUT</c>: a self-contained HTML page of a campaign.</summary>
internal static class ReportCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("campaign") { Description = "A campaign directory (the --out of eptfuzz fuzz)" };
        var command = new Command("report", "Write report.html for a campaign: coverage and exec/s over time, findings with walks") { dir };
        command.SetAction(parse =>
        {
            var path = parse.GetValue(dir)!;
            if (!File.Exists(Path.Combine(path, "stats.json")))
            {
                return Shared.Usage($"{path}: not a campaign directory (no stats.json)");
            }

            try
            {
                Console.Out.WriteLine(HtmlReport.Write(path));
                return 0;
            }
            catch (CampaignUsageException e)
            {
                return Shared.Usage(e.Message);
            }
        });
        return command;
    }
}
