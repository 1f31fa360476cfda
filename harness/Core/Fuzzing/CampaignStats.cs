using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>One point of the campaign's history (for the report's charts).</summary>
/// <remarks>The probe fields come last with defaults: points from before they were recorded read as 0.</remarks>
public sealed record HistoryPoint(double Seconds, long Executions, double ExecPerSecond, int RulesHit, int Features, int CorpusSize, int Findings, long Probes = 0, double ProbesPerSecond = 0, int ClassesHit = 0, int CodeEdges = 0)
{
    public static HistoryPoint Of(CampaignStatus s)
    {
        ArgumentNullException.ThrowIfNull(s);
        return new(s.Elapsed.TotalSeconds, s.Executions, s.ExecPerSecond, s.RulesHit, s.Features, s.CorpusSize, s.Findings, s.Probes, s.ProbesPerSecond, s.ClassesHit, s.CodeEdges);
    }
}

/// <summary>
/// stats.json: the campaign's identity (seed, shard, generator and its profile), its cumulative counters, its
/// findings and its history. Rewritten atomically at every status, finding and stop, so a killed
/// campaign resumes from the last one.
/// </summary>
public sealed class CampaignStats
{
    public const string FileName = "stats.json";

    /// <remarks>
    /// Nullable annotations are respected: a damaged file's <c>"findings": null</c> is refused
    /// while reading (bad input, named by its path), not found later as a crash.
    /// </remarks>
    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        RespectNullableAnnotations = true,
    };

    internal static readonly JsonSerializerOptions JsonLine = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        RespectNullableAnnotations = true,
    };

    public int FormatVersion { get; set; } = 1;

    /// <summary>The campaign seed, as 0x-hex text (JSON numbers lose 64-bit precision in many readers).</summary>
    public string Seed { get; set; } = "0x0";

    public string Shard { get; set; } = "1/1";

    public int GeneratorVersion { get; set; } = CaseGenerator.Version;

    public string CpuProfile { get; set; } = "random";

    public int StepsPerCase { get; set; } = GeneratorProfile.DefaultSteps;

    /// <summary><c>--probe-weight</c>; a stats.json from before the option has none and means the default.</summary>
    public int ProbeWeight { get; set; } = GeneratorProfile.DefaultProbeWeight;

    /// <summary>
    /// A merge of campaigns with different generator profiles (<c>merge --allow-mixed-profiles</c>):
    /// each input's directory and profile. Empty otherwise; then the profile fields above hold.
    /// </summary>
    public List<string> InputProfiles { get; set; } = [];

    /// <summary>The next case index of this shard (cases before it were claimed by a worker).</summary>
    public ulong NextCaseIndex { get; set; }

    public long Executions { get; set; }

    /// <summary>Probes the executions ran (each case's <c>Counters.Probes</c>); a stats.json from before it was counted has none and starts at 0.</summary>
    public long Probes { get; set; }

    public long Rejected { get; set; }

    /// <summary>Of <see cref="Rejected"/>: refused before running, their planned cost over <c>--case-time</c>/<c>--case-memory</c>; a stats.json from before it was counted has none and starts at 0.</summary>
    public long RejectedOverBudget { get; set; }

    public long InfrastructureFailures { get; set; }

    public long Hangs { get; set; }

    public long KnownDivergences { get; set; }

    public long Duplicates { get; set; }

    public double ElapsedSeconds { get; set; }

    /// <summary>The working set: queue entries that keep every feature (the culled queue).</summary>
    public int CorpusSize { get; set; }

    /// <summary>Queue entries ever kept (the working set plus those culled to queue/culled).</summary>
    public int QueueSize { get; set; }

    public int RulesHit { get; set; }

    public int RulesModelled { get; set; }

    public int Features { get; set; }

    public List<string> RulesHitNames { get; set; } = [];

    /// <summary>The feedback that guided the campaign (<c>--coverage</c>).</summary>
    public string Coverage { get; set; } = CoverageKindsText.Format(CoverageKinds.Default);

    /// <summary>Value classes hit (of <see cref="ClassesTotal"/>); see <see cref="ValueClasses"/>.</summary>
    public int ClassesHit { get; set; }

    public int ClassesTotal { get; set; } = ValueClasses.Count;

    /// <summary>The value classes no execution hit, by name.</summary>
    public List<string> ClassesNeverHit { get; set; } = [];

    /// <summary>Executions that hit each value class (this invocation's workers), by name.</summary>
    public Dictionary<string, long> ClassCounts { get; set; } = [];

    /// <summary>Code edges reached (distinct trace-map indices); 0 without the instrumented build.</summary>
    public int CodeEdges { get; set; }

    /// <summary>The names of the targets, baseline first.</summary>
    public List<string> Targets { get; set; } = [];

    public List<FindingRecord> Findings { get; set; } = [];

    public List<HistoryPoint> History { get; set; } = [];

    public static string PathIn(string outDir) => System.IO.Path.Combine(outDir, FileName);

    public static bool Exists(string outDir) => File.Exists(PathIn(outDir));

    /// <summary>Reads stats.json; a message instead when it is missing or unreadable.</summary>
    public static CampaignStats? Load(string outDir, out string error)
    {
        error = string.Empty;
        string path = PathIn(outDir);
        if (!File.Exists(path))
        {
            error = $"{path}: no campaign here (stats.json is missing)";
            return null;
        }

        try
        {
            CampaignStats? stats = JsonSerializer.Deserialize<CampaignStats>(File.ReadAllText(path), Json);
            if (stats is null)
            {
                error = $"{path}: empty";
            }
            else if (stats.Findings.Contains(null!) || stats.History.Contains(null!) || stats.Targets.Contains(null!) || stats.RulesHitNames.Contains(null!) || stats.InputProfiles.Contains(null!))
            {
                // Nullable annotations do not reach a list's elements.
                error = $"{path}: not a campaign's stats.json (a list holds null)";
                return null;
            }

            return stats;
        }
        catch (JsonException e)
        {
            error = $"{path}: not a campaign's stats.json ({e.Message})";
            return null;
        }
    }

    public void Save(string outDir) => FindingFile.WriteAtomic(PathIn(outDir), JsonSerializer.Serialize(this, Json));

    public static string SeedText(ulong seed) => string.Create(CultureInfo.InvariantCulture, $"0x{seed:x}");
}

/// <summary>One line of events.jsonl.</summary>
public sealed record CampaignEvent
{
    /// <summary>start, resume, status, finding, hang, infrastructure, corpus-rejected, stop.</summary>
    public required string Type { get; init; }

    public double Seconds { get; init; }

    public long Executions { get; init; }

    public string? Signature { get; init; }

    public string? Hash { get; init; }

    public string? Path { get; init; }

    public string? Message { get; init; }

    public double? ExecPerSecond { get; init; }

    /// <summary>Cumulative probes (status and stop events).</summary>
    public long? Probes { get; init; }

    /// <summary>Probes per second in this invocation (status events), computed as <see cref="ExecPerSecond"/> is.</summary>
    public double? ProbesPerSecond { get; init; }

    public int? RulesHit { get; init; }

    public int? ClassesHit { get; init; }

    public int? CodeEdges { get; init; }

    public int? RulesModelled { get; init; }

    public int? CorpusSize { get; init; }

    public int? Findings { get; init; }

    /// <summary>
    /// Reads events.jsonl, skipping torn lines: a kill or a full disk can cut the last line, and a
    /// resumed campaign writes its events after it (older versions even glued the next event to it).
    /// </summary>
    public static IReadOnlyList<CampaignEvent> ReadAll(string outDir) => ReadAll(outDir, out _);

    /// <inheritdoc cref="ReadAll(string)"/>
    /// <param name="torn">How many lines were skipped as torn.</param>
    public static IReadOnlyList<CampaignEvent> ReadAll(string outDir, out int torn)
    {
        torn = 0;
        string path = System.IO.Path.Combine(outDir, "events.jsonl");
        var events = new List<CampaignEvent>();
        if (!File.Exists(path))
        {
            return events;
        }

        string[] lines = File.ReadAllLines(path);
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Length == 0)
            {
                continue;
            }

            try
            {
                if (JsonSerializer.Deserialize<CampaignEvent>(lines[i], CampaignStats.JsonLine) is { } e)
                {
                    events.Add(e);
                }
            }
            catch (JsonException)
            {
                torn++;
            }
        }

        return events;
    }
}
