using System.Text;
using System.Text.Json;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Reporting;
using EptFuzz.Harness.Running;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>The layout of a campaign directory, and its append-only event log.</summary>
internal sealed class CampaignFiles : IDisposable
{
    private readonly object eventGate = new();
    private StreamWriter? events;
    /// <summary>True once an event could not be written (a full disk).</summary>
    private bool broken;

    public CampaignFiles(string outDir)
    {
        Root = outDir;
    }

    public string Root { get; }

    public string Queue => Path.Combine(Root, "queue");

    public string Findings => Path.Combine(Root, "findings");

    /// <summary>Queue entries culled from the working set (every feature they set is kept by another entry).</summary>
    public string Culled => Path.Combine(Queue, "culled");

    public string Hangs => Path.Combine(Root, "hangs");

    /// <summary>The first cases a target refused as bad input, for inspection.</summary>
    public string Rejected => Path.Combine(Root, "rejected");

    public string EventsPath => Path.Combine(Root, "events.jsonl");

    public void Create()
    {
        Directory.CreateDirectory(Queue);
        Directory.CreateDirectory(Findings);
        Directory.CreateDirectory(Hangs);
        // Unbuffered (each line one write) so that a failed write is not retried at close.
        var stream = new FileStream(EventsPath, FileMode.Append, FileAccess.Write, FileShare.Read, bufferSize: 1);
        if (stream.Length > 0 && LastByte(EventsPath) != (byte)'\n')
        {
            // A kill or a full disk tore the last line: end it, so that the next event is a line of its own.
            stream.WriteByte((byte)'\n');
        }

        events = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true };
    }

    /// <summary>Deletes the temporaries of writes that a kill or a full disk interrupted (the campaign's lock is held); returns how many.</summary>
    public int DeleteStaleTemporaries() =>
        new[] { Root, Queue, Culled, Findings, Hangs, Rejected }.Sum(FindingFile.DeleteStaleTemporaries);

    private static int LastByte(string path)
    {
        using var reader = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        reader.Seek(-1, SeekOrigin.End);
        return reader.ReadByte();
    }

    public string ReducedPath(string hash) => Path.Combine(Findings, hash + ".ept");

    public string RawPath(string hash) => Path.Combine(Findings, hash + ".raw.ept");

    public string TestPath(string hash) => Path.Combine(Findings, hash + ".test.cs");

    /// <summary>The finding's report data for the HTML page (message, each side's observation and walk).</summary>
    public string DetailPath(string hash) => Path.Combine(Findings, hash + ".json");

    public string CurrentSlot(int worker) => Path.Combine(Queue, $".current-{worker}.ept");

    public void Log(CampaignEvent e)
    {
        string line = JsonSerializer.Serialize(e, CampaignStats.JsonLine);
        lock (eventGate)
        {
            try
            {
                events?.WriteLine(line);
            }
            catch (IOException)
            {
                // Said by the caller (the campaign stops for it); closing must not fail again on it.
                broken = true;
                throw;
            }
        }
    }

    public void Dispose()
    {
        lock (eventGate)
        {
            try
            {
                events?.Dispose();
            }
            catch (IOException) when (broken)
            {
                // The write that failed was already reported; the lines before it are complete.
            }

            events = null;
        }
    }

    /// <summary>Queue entries in the order they were kept.</summary>
    public IEnumerable<string> QueueEntries() =>
        Directory.Exists(Queue)
            ? Directory.EnumerateFiles(Queue, "id-*.ept").Order(StringComparer.Ordinal)
            : [];

    /// <summary>Entries culled from the working set.</summary>
    public IEnumerable<string> CulledEntries() =>
        Directory.Exists(Culled)
            ? Directory.EnumerateFiles(Culled, "id-*.ept").Order(StringComparer.Ordinal)
            : [];

    /// <summary>What the report shows of a finding: the run of its reduced case.</summary>
    public static string DetailJson(FindingRecord record, CaseResult reduced) => JsonSerializer.Serialize(
        new FindingDetail(record.Signature, record.Hash, reduced.Message, [.. reduced.Observations.Select(CaseReport.View)], reduced.Diagnostics),
        CampaignStats.Json);

    /// <summary>The header of a raw (unreduced) finding.</summary>
    public static EptCase AnnotateRaw(EptCase c, CaseResult result, FindingOrigin origin, string path, Func<string, string> replay)
    {
        var header = new List<string>
        {
            $"found by: {origin.FoundBy} (generator {origin.GeneratorVersion})",
        };
        if (origin.SeedLine is { } seedLine)
        {
            header.Add(seedLine);
        }

        header.Add(FindingHeader.SignatureLine(Reducer.KeyOf(result) ?? "none"));
        header.Add($"raw finding, {c.Steps.Length} steps, not reduced");
        header.Add($"first divergence: {result.Message}");
        header.Add($"replay: {replay(path)}");
        return c with { HeaderComments = [.. header.Select(h => h.Replace('\n', ' '))], SourceName = path };
    }
}

/// <summary>findings/HASH.json: the data the report draws, each side's observation as the runner recorded it.</summary>
/// <param name="Sides">Each translator's observation, walk and rules at the step where the reduced case stops.</param>
/// <param name="Diagnostics">A crash's exception and log, or an invariant's account; null when none.</param>
public sealed record FindingDetail(string Signature, string Hash, string Message, IReadOnlyList<ObservationView>? Sides, string? Diagnostics);
