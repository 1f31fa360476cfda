using System.Globalization;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>Where a finding came from, for its header.</summary>
/// <param name="FoundBy">The command that found it (<c>eptfuzz fuzz --seed 0x5eed …</c>, <c>eptfuzz reduce FILE</c>).</param>
/// <param name="CaseSeed">The generator seed of the (unmutated) case, when it was generated.</param>
/// <param name="Cpu">The generator's cpu profile, when it was generated.</param>
public sealed record FindingOrigin(string FoundBy, ulong? CaseSeed = null, CpuProfile? Cpu = null)
{
    public int GeneratorVersion { get; init; } = CaseGenerator.Version;

    /// <summary>The case is a mutant: its seed is the iteration's, which does not regenerate it (the file is the record).</summary>
    public bool Mutant { get; init; }

    /// <summary>The header line that records the seed, or null when there is none.</summary>
    public string? SeedLine => CaseSeed is not { } seed ? null
        : Mutant ? $"iteration seed: 0x{seed:x16} (a mutant of queue entries: this file, not the seed, is the record)"
        : $"case seed: 0x{seed:x16}";

    /// <summary>Reads the seed back from a header line written by <see cref="SeedLine"/>.</summary>
    public static (ulong Seed, bool Mutant)? ParseSeedLine(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        foreach ((string prefix, bool mutant) in (ReadOnlySpan<(string, bool)>)[("case seed: 0x", false), ("iteration seed: 0x", true)])
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal))
            {
                string hex = line[prefix.Length..].Split(' ')[0];
                return ulong.TryParse(hex, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out ulong seed) ? (seed, mutant) : null;
            }
        }

        return null;
    }
}

/// <summary>
/// Writes a reduced finding as a case file whose header says how it was found and what each side
/// observed, and writes files atomically (a temp file, then a rename), so that a reader or a
/// killed campaign never sees half a file.
/// </summary>
public static class FindingFile
{
    /// <summary>The reduced case with its header: seed, generator version, steps before/after, time, each side's observation, replay command.</summary>
    public static EptCase Annotate(ReductionResult reduction, FindingOrigin origin, string path, Func<string, string> replayCommand)
    {
        ArgumentNullException.ThrowIfNull(reduction);
        ArgumentNullException.ThrowIfNull(origin);
        ArgumentNullException.ThrowIfNull(replayCommand);
        var header = new List<string>
        {
            $"found by: {origin.FoundBy} (generator {origin.GeneratorVersion}{(origin.Cpu is { } cpu ? $", cpu profile {cpu.ToString().ToLowerInvariant()}" : string.Empty)})",
        };
        if (origin.SeedLine is { } seedLine)
        {
            header.Add(seedLine);
        }

        header.Add(FindingHeader.SignatureLine(reduction.Signature));
        header.Add(string.Create(
            CultureInfo.InvariantCulture,
            $"steps: {reduction.StepsBefore} before, {reduction.StepsAfter} after reduction ({reduction.Elapsed.TotalSeconds:0.00} s, {reduction.Runs} runs{(reduction.TimedOut ? ", stopped by the time cap" : string.Empty)})"));
        if (!string.IsNullOrEmpty(reduction.Result.Message))
        {
            header.Add($"first divergence: {reduction.Result.Message}");
        }

        header.AddRange(Reporting.CaseReport.Lines(reduction.Result, replay: false, signature: false));

        header.Add($"replay: {replayCommand(path)}");
        return reduction.Case with
        {
            HeaderComments = [.. header.Select(Clip)],
            SourceName = path,
        };
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically: a temp file in the same folder, flushed, then renamed over.</summary>
    /// <param name="durable">
    /// True: flushed to the disk before the rename (findings). False: to the OS only, which a kill
    /// of the process cannot lose (queue entries, which a campaign keeps hundreds of a second:
    /// a disk flush each made the campaign wait on the disk more than it ran cases).
    /// </param>
    public static void WriteAtomic(string path, string text, bool durable = true)
    {
        ArgumentNullException.ThrowIfNull(path);
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        string temp = TempPath(directory, path);
        try
        {
            // A new file, never a truncated one: on ext4 (auto_da_alloc) truncating a file, even an
            // empty one, makes its close start writing it to the disk, which cost a campaign about
            // 1 ms of kernel time per queue entry. The temporary is this thread's alone: one left by
            // a killed writer of the same name is removed first.
            File.Delete(temp);
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
            using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false)))
            {
                writer.Write(text);
                writer.Flush();
                stream.Flush(flushToDisk: durable);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch (IOException)
        {
            // A full disk: the old file (if any) is intact; do not leave the half-written temporary.
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>The temporary a write goes through: hidden, named after the file, the process and the thread.</summary>
    private static string TempPath(string directory, string path) =>
        Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp");

    /// <summary>Deletes the temporaries that a killed writer left in <paramref name="directory"/> (only while no other writer can run there); returns how many.</summary>
    public static int DeleteStaleTemporaries(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
        {
            return 0;
        }

        int n = 0;
        foreach (string temp in Directory.EnumerateFiles(directory, ".*.tmp"))
        {
            File.Delete(temp);
            n++;
        }

        return n;
    }

    /// <summary>
    /// The file-name hash of a signature text: the same FNV-1a 32 as <see cref="Comparing.DivergenceSignature.Hash"/>
    /// (whose text is the signature), so names agree with the runner's reports.
    /// </summary>
    public static string HashOf(string signature) => Comparing.DivergenceSignature.HashOf(signature);

    /// <summary>Comment lines stay well under the parser's line limit.</summary>
    private static string Clip(string line)
    {
        string oneLine = line.Replace('\r', ' ').Replace('\n', ' ');
        return oneLine.Length <= 1000 ? oneLine : string.Concat(oneLine.AsSpan(0, 1000), " …");
    }
}

/// <summary>
/// The header lines of a finding file that a campaign reads back: after a kill, a raw finding's
/// file is the only record of its signature and seed. They are written and parsed here only.
/// </summary>
public static class FindingHeader
{
    private const string SignaturePrefix = "signature: ";

    /// <summary>The line that records what a finding must keep: a divergence signature, or <c>expectation-failed</c>.</summary>
    public static string SignatureLine(string key) => SignaturePrefix + key;

    /// <summary>The signature recorded by <see cref="SignatureLine"/>, or null when there is none or it is not a signature.</summary>
    public static string? ReadSignature(EptCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        foreach (string line in c.HeaderComments)
        {
            if (line.StartsWith(SignaturePrefix, StringComparison.Ordinal))
            {
                string key = line[SignaturePrefix.Length..];
                return key == Reducer.ExpectationFailedKey || Comparing.DivergenceSignature.TryParse(key) is not null ? key : null;
            }
        }

        return null;
    }

    /// <summary>The seed recorded by <see cref="FindingOrigin.SeedLine"/>, or null.</summary>
    public static (ulong Seed, bool Mutant)? ReadSeed(EptCase c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.HeaderComments.Select(FindingOrigin.ParseSeedLine).FirstOrDefault(x => x is not null);
    }
}
