namespace EptFuzz.Reliability.Tests.Support;

/// <summary>A temporary directory, deleted with everything in it.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir(string prefix = "eptfuzz-rel-")
    {
        Path = Directory.CreateTempSubdirectory(prefix).FullName;
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>Writes an executable shell script named <paramref name="name"/> here and returns its path.</summary>
    public string Script(string name, string body)
    {
        string file = this[name];
        File.WriteAllText(file, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return file;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
