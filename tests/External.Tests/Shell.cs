using System.Diagnostics;

namespace EptFuzz.External.Tests;

/// <summary>Runs a command to completion and returns its exit code and output (stdout and stderr together).</summary>
internal static class Shell
{
    public static (int ExitCode, string Output) Run(string file, string arguments, string workingDirectory, TimeSpan? timeout = null)
    {
        var info = new ProcessStartInfo(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["DOTNET_NOLOGO"] = "1";
        info.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {arguments} ran past its time limit");
        }

        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    /// <summary>The C compiler the samples build with, or null (a test then skips with the reason, unless CI requires it).</summary>
    public static string? CCompiler() => Find("cc");

    /// <summary>The full path of an executable on PATH, or null.</summary>
    public static string? Find(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var path = System.IO.Path.Combine(dir, name);
            if (File.Exists(path))
            {
                return path;
            }
        }

        return null;
    }
}
