using System.ComponentModel;
using System.Diagnostics;

namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>What one emulator process did.</summary>
public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError, bool TimedOut, TimeSpan Elapsed);

/// <summary>Runs one emulator process with a watchdog: past the timeout the process and its children are killed.</summary>
public static class ProcessRunner
{
    /// <summary>Returns null when the executable does not exist (so the caller can name the missing package).</summary>
    public static ProcessResult? Run(string fileName, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                info.Environment[key] = value;
            }
        }

        var watch = Stopwatch.StartNew();
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}");
        }
        catch (Win32Exception)
        {
            // ENOENT: the emulator is not installed. Any other start failure propagates.
            if (!IsOnPath(fileName))
            {
                return null;
            }

            throw;
        }

        using (process)
        {
            // The debugger build of Bochs reads commands from stdin: give it end-of-file, never a terminal.
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            bool exited = process.WaitForExit(timeout);
            if (!exited)
            {
                try
                {
                    process.Kill(entireProcessTree: true);
                }
                catch (Exception e) when ((e is InvalidOperationException or Win32Exception) && process.HasExited)
                {
                    // It ended on its own between the timeout and the kill: nothing is left to stop.
                }

                process.WaitForExit();
            }

            process.WaitForExit();
            return new ProcessResult(exited ? process.ExitCode : -1, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult(), !exited, watch.Elapsed);
        }
    }

    /// <summary>True when <paramref name="fileName"/> is an existing path or is found on PATH.</summary>
    public static bool IsOnPath(string fileName)
    {
        if (fileName.Contains('/', StringComparison.Ordinal))
        {
            return File.Exists(fileName);
        }

        string path = Environment.GetEnvironmentVariable("PATH") ?? string.Empty;
        return path.Split(':', StringSplitOptions.RemoveEmptyEntries).Any(dir => File.Exists(Path.Combine(dir, fileName)));
    }
}
