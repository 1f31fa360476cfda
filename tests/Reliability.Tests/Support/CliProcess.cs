using System.Diagnostics;

namespace EptFuzz.Reliability.Tests.Support;

/// <summary>What one run of the CLI did.</summary>
internal sealed record CliRun(int ExitCode, string Out, string Err)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Out}\nstderr:\n{Err}";
}

/// <summary>
/// The built CLI (eptfuzz.dll, copied next to this test assembly) run as its own process, in the
/// repository root, as a user would run it: the exit code and both streams are what is tested.
/// </summary>
internal static class CliProcess
{
    /// <summary>The repository root, by its marker file.</summary>
    public static string Root => RepositoryRoot.Path;

    /// <summary>The dotnet host, found once on the test's own PATH (tests may give the CLI another PATH).</summary>
    public static string Dotnet { get; } = FindDotnet();

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "eptfuzz.dll");

    /// <summary>Starts the CLI; <paramref name="path"/> replaces PATH when given.</summary>
    public static Process Start(IEnumerable<string> args, string? path = null)
    {
        var info = new ProcessStartInfo(Dotnet)
        {
            WorkingDirectory = Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(Dll);
        foreach (string a in args)
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["DOTNET_NOLOGO"] = "1";
        // No terminal: the status line is printed plainly.
        info.Environment["TERM"] = "dumb";
        if (path is not null)
        {
            info.Environment["PATH"] = path;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("could not start the CLI");
        process.StandardInput.Close();
        return process;
    }

    /// <summary>Runs the CLI to its end (a two-minute watchdog fails the test instead of hanging it).</summary>
    public static CliRun Run(IEnumerable<string> args, string? path = null)
    {
        using Process process = Start(args, path);
        return Wait(process);
    }

    public static CliRun Wait(Process process)
    {
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("the CLI ran past two minutes");
        }

        process.WaitForExit();
        return new CliRun(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }

    /// <summary>A stack trace's frame lines, which no failure the tool expects may print.</summary>
    public static bool HasStackTrace(string text) =>
        text.Split('\n').Any(l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal) && l.Contains('(', StringComparison.Ordinal));

    private static string FindDotnet()
    {
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host))
        {
            return host;
        }

        string path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        foreach (string dir in path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, "dotnet");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("dotnet is not on PATH");
    }
}
