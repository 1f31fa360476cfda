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
        if (origin.CaseSeed is { } seed)
        {
            header.Add($"case seed: 0x{seed:x16}");
        }

        header.Add($"signature: {reduction.Signature}");
        header.Add(string.Create(
            CultureInfo.InvariantCulture,
            $"steps: {reduction.StepsBefore} before, {reduction.StepsAfter} after reduction ({reduction.Elapsed.TotalSeconds:0.00} s, {reduction.Runs} runs{(reduction.TimedOut ? ", stopped by the time cap" : string.Empty)})"));
        if (!string.IsNullOrEmpty(reduction.Result.Message))
        {
            header.Add($"first divergence: {reduction.Result.Message}");
        }

        foreach (string line in reduction.Result.Detail.Split('\n'))
        {
            if (line.Length > 0 && !line.StartsWith("replay:", StringComparison.Ordinal))
            {
                header.Add(line);
            }
        }

        header.Add($"replay: {replayCommand(path)}");
        return reduction.Case with
        {
            HeaderComments = [.. header.Select(Clip)],
            SourceName = path,
        };
    }

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> atomically: a temp file in the same folder, flushed, then renamed over.</summary>
    public static void WriteAtomic(string path, string text)
    {
        ArgumentNullException.ThrowIfNull(path);
        string directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp");
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 4096, FileOptions.None))
        using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false)))
        {
            writer.Write(text);
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }

        File.Move(temp, path, overwrite: true);
    }

    /// <summary>
    /// The file-name hash of a signature text: the same FNV-1a 32 as <see cref="Comparing.DivergenceSignature.Hash"/>
    /// (whose text is the signature), so names agree with the runner's reports.
    /// </summary>
    public static string HashOf(string signature)
    {
        ArgumentNullException.ThrowIfNull(signature);
        uint h = 2166136261;
        foreach (char c in signature)
        {
            h = (h ^ c) * 16777619;
        }

        return h.ToString("x8", CultureInfo.InvariantCulture);
    }

    /// <summary>Comment lines stay well under the parser's line limit.</summary>
    private static string Clip(string line)
    {
        string oneLine = line.Replace('\r', ' ').Replace('\n', ' ');
        return oneLine.Length <= 1000 ? oneLine : string.Concat(oneLine.AsSpan(0, 1000), " …");
    }
}
