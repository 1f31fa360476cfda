using System.Diagnostics;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>Finds case files and replays them; a malformed file is a located BadInput result, never an exception.</summary>
public static class CorpusReplay
{
    /// <summary>Largest case file read; larger ones are refused as absurd.</summary>
    public const long MaxFileBytes = 1 << 20;

    /// <summary>The .ept files named, directories searched recursively, in a stable order.</summary>
    public static (List<string> Files, List<string> Errors) FindCases(IEnumerable<string> paths)
    {
        var files = new List<string>();
        var errors = new List<string>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
            {
                files.AddRange(Directory.EnumerateFiles(path, "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
            }
            else if (File.Exists(path))
            {
                files.Add(path);
            }
            else
            {
                errors.Add($"{path}: no such file or directory");
            }
        }

        return (files, errors);
    }

    /// <summary>Reads and parses one file; the errors are FILE:LINE:COLUMN lines.</summary>
    public static (EptCase? Case, IReadOnlyList<string> Errors) Load(string file)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(file);
            if (info.Length > MaxFileBytes)
            {
                return (null, [$"{file}:1:1: the file is {info.Length} bytes; cases larger than {MaxFileBytes} bytes are refused"]);
            }

            bytes = File.ReadAllBytes(file);
        }
        catch (IOException e)
        {
            return (null, [$"{file}:1:1: cannot read: {e.Message}"]);
        }
        catch (UnauthorizedAccessException e)
        {
            return (null, [$"{file}:1:1: cannot read: {e.Message}"]);
        }

        var parsed = CaseParser.Parse(bytes, file);
        return parsed.Succeeded ? (parsed.Case, []) : (null, parsed.Errors.Select(e => e.ToString()).ToList());
    }

    public static CaseResult RunFile(string file, RunOptions options)
    {
        var clock = Stopwatch.StartNew();
        var (@case, errors) = Load(file);
        if (@case is null)
        {
            var first = errors.FirstOrDefault() ?? $"{file}:1:1: unreadable";
            return new CaseResult
            {
                File = file,
                Status = CaseStatus.BadInput,
                Message = first,
                Line = LineOf(first, file),
                Detail = string.Join('\n', errors),
                Duration = clock.Elapsed,
            };
        }

        return CaseRunner.Run(@case with { SourceName = file }, options);
    }

    private static int LineOf(string error, string file)
    {
        var rest = error.Length > file.Length + 1 ? error[(file.Length + 1)..] : string.Empty;
        int colon = rest.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 && int.TryParse(rest[..colon], out int line) ? line : 0;
    }
}
