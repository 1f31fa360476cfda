using System.Diagnostics;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Running;

/// <summary>Finds case files and replays them; a malformed file is a located BadInput result, never an exception.</summary>
public static class CorpusReplay
{
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

    public static CaseResult RunFile(string file, RunOptions options)
    {
        var clock = Stopwatch.StartNew();
        var parsed = CaseFile.Read(file);
        if (!parsed.Succeeded)
        {
            var first = parsed.Errors[0];
            return new CaseResult
            {
                File = file,
                Status = CaseStatus.BadInput,
                Message = first.ToString(),
                Line = first.Line,
                Column = first.Column,
                Diagnostics = parsed.ErrorText(),
                Duration = clock.Elapsed,
            };
        }

        return CaseRunner.Run(parsed.Case with { SourceName = file }, options);
    }
}
