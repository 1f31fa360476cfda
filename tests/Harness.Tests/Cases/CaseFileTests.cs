using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Tests.Cases;

public sealed class CaseFileTests : IDisposable
{
    private readonly string directory = Directory.CreateTempSubdirectory("eptcases-").FullName;

    public void Dispose() => Directory.Delete(directory, recursive: true);

    [Fact]
    public void ReadsAFile_AndNamesErrorsByItsPath()
    {
        string good = Path.Combine(directory, "good.ept");
        string bad = Path.Combine(directory, "bad.ept");
        File.WriteAllText(good, SpecExamples.MinimizedReproducer);
        File.WriteAllText(bad, "eptcase 1\neptp\nsplit gpa=zz\n");

        Assert.True(CaseFile.Read(good).Succeeded);
        Assert.StartsWith(bad + ":3:11: ", Assert.Single(CaseFile.Read(bad).Errors).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void MissingFile_IsALocatedError()
    {
        string missing = Path.Combine(directory, "missing.ept");

        CaseError error = Assert.Single(CaseFile.Read(missing).Errors);

        Assert.Equal((missing, 1, 1), (error.File, error.Line, error.Column));
        Assert.Contains("cannot read the file", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HugeFile_IsRefused()
    {
        string huge = Path.Combine(directory, "huge.ept");
        using (FileStream stream = File.Create(huge))
        {
            stream.SetLength(64L << 20);
        }

        Assert.Contains("file too large", Assert.Single(CaseFile.Read(huge).Errors).Message, StringComparison.Ordinal);
    }
}
