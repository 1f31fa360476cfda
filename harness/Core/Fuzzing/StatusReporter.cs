namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Prints campaign statuses: on a terminal one line redrawn in place (a progress display),
/// otherwise one plain line per status (for logs and CI).
/// </summary>
public sealed class StatusReporter(TextWriter writer, bool terminal) : IProgress<CampaignStatus>
{
    private int lastLength;

    /// <summary>For the console: redraws when stdout is a terminal.</summary>
    public static StatusReporter ForConsole() => new(Console.Out, !Console.IsOutputRedirected);

    public void Report(CampaignStatus value)
    {
        ArgumentNullException.ThrowIfNull(value);
        string line = value.Line();
        lock (writer)
        {
            if (terminal)
            {
                writer.Write('\r');
                writer.Write(line.PadRight(lastLength));
                lastLength = line.Length;
            }
            else
            {
                writer.WriteLine(line);
            }

            writer.Flush();
        }
    }

    /// <summary>Ends the redrawn line (call once after the campaign on a terminal).</summary>
    public void Finish()
    {
        if (terminal && lastLength > 0)
        {
            lock (writer)
            {
                writer.WriteLine();
                lastLength = 0;
            }
        }
    }
}
